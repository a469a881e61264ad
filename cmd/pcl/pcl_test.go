package main

import (
	"bufio"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/client"
)

const password = "correct horse battery"

func TestLoginStatusLogout(t *testing.T) {
	c := newTestCluster(t, "")
	c.addUser(t, "alice", password)

	out := c.mustPcl(t, password+"\n", "login", "--proxy", c.Addr, "--user", "alice", "--password-stdin", "--ca-pin", c.HostPin())
	if !strings.Contains(out, "User:         alice") {
		t.Errorf("login printed %q", out)
	}

	out = c.mustPcl(t, "", "status")
	for _, re := range []string{
		`(?m)^  User:\s+alice$`,
		`(?m)^  Roles:\s+access$`,
		`(?m)^  Traits:\s+db_names=app db_users=alice$`,
		`(?m)^  Cluster:\s+test$`,
		`(?m)^  Proxy:\s+` + regexp.QuoteMeta(c.Addr) + `$`,
		`(?m)^  Certificate:\s+valid until \d{4}-\d\d-\d\d \d\d:\d\d \S+ \(in (\d+h)?(\d+m)?\)$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status does not match %s:\n%s", re, out)
		}
	}

	p, err := client.LoadProfile(c.home)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the key %s has mode %v", p.KeyPath(), st.Mode().Perm())
	}
	// What `openssl x509 -subject` would show.
	certPEM, err := os.ReadFile(p.CertPath())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != "access" {
		t.Errorf("certificate subject %v, want CN=alice, O=access", cert.Subject)
	}

	if out := c.mustPcl(t, "", "logout"); out != "Logged out alice from "+c.Addr+".\n" {
		t.Errorf("logout printed %q", out)
	}
	for _, path := range []string{p.KeyPath(), p.CertPath(), filepath.Join(c.home, "profile.json")} {
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s is still there after logout", path)
		}
	}
	if _, errOut, code := c.pclText(t, "", "status"); code != 1 || !strings.Contains(errOut, "not logged in") {
		t.Errorf("status after logout: exit %d, %q", code, errOut)
	}
	if out := c.mustPcl(t, "", "logout"); out != "Not logged in.\n" {
		t.Errorf("logout twice printed %q", out)
	}

	// The proxy's CA was remembered: no pin this time.
	c.mustPcl(t, password+"\n", "login", "--proxy", c.Addr, "--user", "alice", "--password-stdin")
	// And --proxy and --user default to the current login's.
	c.mustPcl(t, password+"\n", "login", "--password-stdin")
}

func TestLoginErrors(t *testing.T) {
	c := newTestCluster(t, "")
	c.addUser(t, "alice", password)
	other, err := ca.NewAuthority(ca.HostCA, "other", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string // the whole of stderr when it starts with "error: "
	}{
		{"wrong password", "wrong password\n", []string{"--user", "alice", "--password-stdin", "--ca-pin", c.HostPin()},
			"error: invalid username, password or one-time code\n"},
		{"unknown user", password + "\n", []string{"--user", "mallory", "--password-stdin", "--ca-pin", c.HostPin()},
			"error: invalid username, password or one-time code\n"},
		{"wrong pin", password + "\n", []string{"--user", "alice", "--password-stdin", "--ca-pin", other.Fingerprint()},
			"does not match the pin " + other.Fingerprint()},
		{"no pin", password + "\n", []string{"--user", "alice", "--password-stdin"}, "--ca-pin"},
		{"no terminal", "", []string{"--user", "alice", "--ca-pin", c.HostPin()}, "--password-stdin"},
		{"empty stdin", "", []string{"--user", "alice", "--ca-pin", c.HostPin(), "--password-stdin"}, "no password on stdin"},
		{"no user", password + "\n", []string{"--password-stdin", "--ca-pin", c.HostPin()}, "--user NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"login", "--proxy", c.Addr}, tc.args...)
			out, errOut, code := c.pclText(t, tc.stdin, args...)
			if code != 1 || out != "" {
				t.Errorf("exit %d, stdout %q", code, out)
			}
			if strings.HasPrefix(tc.want, "error: ") && errOut != tc.want || !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q, want %q", errOut, tc.want)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "error: ") {
				t.Errorf("stderr %q is not one error line", errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(c.home, "profile.json")); err == nil {
		t.Errorf("a refused login wrote a profile")
	}
}

func TestSignupThenLogin(t *testing.T) {
	c := newTestCluster(t, "")
	token := c.addUser(t, "bob", "")
	out := c.mustPcl(t, password+"\n", "signup", "--proxy", c.Addr, "--token", token, "--ca-pin", c.HostPin(), "--password-stdin")
	if want := "Signed up as bob. Log in with: pcl login --proxy " + c.Addr + " --user bob\n"; out != want {
		t.Errorf("signup printed %q, want %q", out, want)
	}
	// Sign-up stored the cluster's CA: the login needs no pin.
	out = c.mustPcl(t, password+"\n", "login", "--proxy", c.Addr, "--user", "bob", "--password-stdin")
	if !strings.Contains(out, "User:         bob") {
		t.Errorf("login printed %q", out)
	}
	if _, errOut, code := c.pclText(t, password+"\n", "signup", "--proxy", c.Addr, "--token", token, "--password-stdin"); code != 1 ||
		!strings.Contains(errOut, "invalid, used or expired") {
		t.Errorf("signup with a used token: exit %d, %q", code, errOut)
	}
}

func TestSignupWithTOTPAndLoginWithCodes(t *testing.T) {
	c := newTestCluster(t, "on")
	token := c.addUser(t, "bob", "")

	// pcl prints the enrollment URL, then reads the code after the
	// password on stdin: answer like a person holding the app would.
	stdinR, stdinW := io.Pipe()
	stdoutR, stdoutW := io.Pipe()
	secrets := make(chan string, 1)
	go func() {
		defer close(secrets)
		sc := bufio.NewScanner(stdoutR)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "otpauth://") {
				continue
			}
			u, err := url.Parse(line)
			if err != nil {
				stdinW.CloseWithError(err)
				continue
			}
			secret := u.Query().Get("secret")
			code, err := totp.GenerateCode(secret, c.Clock.Now())
			if err != nil {
				stdinW.CloseWithError(err)
				continue
			}
			secrets <- secret
			io.WriteString(stdinW, code+"\n")
		}
	}()
	stdin := io.MultiReader(strings.NewReader(password+"\n"), stdinR)
	errOut, code := c.pcl(t, stdin, stdoutW, "signup", "--proxy", c.Addr, "--token", token, "--ca-pin", c.HostPin(), "--password-stdin", "--totp")
	stdoutW.Close()
	stdinW.Close()
	secret := <-secrets
	if code != 0 || secret == "" {
		t.Fatalf("signup --totp: exit %d, %q", code, errOut)
	}

	// Without a code the cluster (second factor on) refuses; the code
	// comes from --otp or the line after the password.
	c.Clock.Advance(30 * time.Second)
	if _, errOut, code := c.pclText(t, password+"\n", "login", "--proxy", c.Addr, "--user", "bob", "--password-stdin"); code != 1 ||
		!strings.Contains(errOut, "--otp CODE") {
		t.Errorf("login without a code: exit %d, %q", code, errOut)
	}
	otp, err := totp.GenerateCode(secret, c.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.mustPcl(t, password+"\n", "login", "--proxy", c.Addr, "--user", "bob", "--password-stdin", "--otp", otp)

	c.Clock.Advance(30 * time.Second)
	otp, err = totp.GenerateCode(secret, c.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.mustPcl(t, password+"\n"+otp+"\n", "login", "--proxy", c.Addr, "--user", "bob", "--password-stdin")

	// A code works once.
	if _, errOut, code := c.pclText(t, password+"\n", "login", "--proxy", c.Addr, "--user", "bob", "--password-stdin", "--otp", otp); code != 1 ||
		errOut != "error: invalid username, password or one-time code\n" {
		t.Errorf("login with a used code: exit %d, %q", code, errOut)
	}
}

func TestStatusShowsExpiry(t *testing.T) {
	expires := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	p := &client.Profile{ProxyAddr: "proxy:3080", Username: "alice", Roles: []string{"access"}, Cluster: "test", Expires: expires}
	for now, want := range map[time.Time]string{
		expires.Add(-(11*time.Hour + 59*time.Minute)): "valid until " + expires.Local().Format("2006-01-02 15:04 MST") + " (in 11h59m)",
		expires: "EXPIRED at " + expires.Local().Format("2006-01-02 15:04 MST") + "; log in again with pcl login",
	} {
		var b strings.Builder
		a := &app{now: func() time.Time { return now }}
		a.printProfile(&b, p)
		if !strings.Contains(b.String(), "  Certificate:  "+want+"\n") {
			t.Errorf("at %v status printed\n%s\nwant %q", now, b.String(), want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	c := newTestCluster(t, "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"login", "--bogus"}, "unknown flag: --bogus; see pcl login --help"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"status", "extra"}, "takes no arguments"},
		{[]string{"signup", "--proxy", "p:1"}, "--token"},
		{[]string{"login", "--proxy", "nohostport", "--user", "a", "--password-stdin"}, "not host:port"},
	} {
		_, errOut, code := c.pclText(t, password+"\n", tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("pcl %v: exit %d, %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
}
