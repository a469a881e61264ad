package auth_test

import (
	"context"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestLoginIssuesUserCertificate(t *testing.T) {
	tc := authtest.Start(t)
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, map[string][]string{"db_users": {"alice"}, "db_names": {"app"}})
	_, resp, key := tc.Login(t, "alice", "correct horse")

	cert, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "alice" {
		t.Errorf("CN = %q, want alice", cert.Subject.CommonName)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("the certificate is not for the caller's public key")
	}
	v := &ca.Verifier{Roots: []*x509.Certificate{tc.Server.Authority(ca.UserCA).Cert}, Kinds: []ca.CertKind{ca.KindUser}, Clock: tc.Clock.Now}
	id, err := v.Verify([]*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || len(id.Roles) != 1 || id.Roles[0] != "access" || id.Traits["db_users"][0] != "alice" || id.LoginIP != "127.0.0.1" {
		t.Errorf("identity = %+v", id)
	}
	if ttl := cert.NotAfter.Sub(tc.Clock.Now()); ttl < 11*time.Hour+50*time.Minute || ttl > 12*time.Hour {
		t.Errorf("certificate lives %v, want about 12h", ttl)
	}
	if len(tc.Audit.OfType(audit.TypeCertCreate)) == 0 {
		t.Error("no cert.create event")
	}
}

func TestLoginTTLCappedByRole(t *testing.T) {
	tc := authtest.Start(t)
	role, err := policy.ParseRole([]byte("kind: role\nversion: v1\nmetadata: {name: short}\nspec:\n  options: {max_session_ttl: 1h}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Admin().CreateRole(context.Background(), role); err != nil {
		t.Fatal(err)
	}
	tc.AddUser(t, "alice", "correct horse", []string{"access", "short"}, nil)
	pub, _ := authtest.KeyPair(t)
	resp, err := tc.Anon(t).Login(context.Background(), authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub, TTL: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if ttl := resp.Expires.Sub(tc.Clock.Now()); ttl > time.Hour {
		t.Errorf("certificate lives %v; the role caps it at 1h", ttl)
	}
}

func TestFailedLoginsAllLookTheSame(t *testing.T) {
	tc := authtest.Start(t)
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	if _, err := tc.Admin().CreateUser(context.Background(), authclient.CreateUserRequest{User: authclient.User{Name: "pending", Roles: []string{"access"}}}); err != nil {
		t.Fatal(err)
	}
	pub, _ := authtest.KeyPair(t)
	anon := tc.Anon(t)
	var msgs []string
	for _, tt := range []struct{ user, pw string }{
		{"alice", "wrong password"},
		{"nobody", "correct horse"},
		{"pending", "correct horse"},
		{"alice", ""},
	} {
		_, err := anon.Login(context.Background(), authclient.LoginRequest{Username: tt.user, Password: tt.pw, PublicKey: pub})
		var ae *authclient.Error
		if !errors.As(err, &ae) || ae.Code != authclient.CodeUnauthenticated || ae.Status != 401 {
			t.Fatalf("login %s/%q: %v, want unauthenticated", tt.user, tt.pw, err)
		}
		msgs = append(msgs, ae.Message)
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("failure messages differ: %q vs %q", m, msgs[0])
		}
	}
	fails := 0
	for _, e := range tc.Audit.OfType(audit.TypeUserLogin) {
		if !e.(*audit.UserLogin).Success {
			fails++
		}
	}
	if fails != 4 {
		t.Errorf("%d failed user.login events, want 4", fails)
	}
}

func TestLoginRateLimitedPerUser(t *testing.T) {
	tc := authtest.Start(t, authtest.WithConfig(func(c *auth.Config) { c.MaxLoginAttempts = 3; c.LoginAttemptWindow = 10 * time.Minute }))
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	pub, _ := authtest.KeyPair(t)
	anon := tc.Anon(t)
	login := func(pw string) error {
		_, err := anon.Login(context.Background(), authclient.LoginRequest{Username: "alice", Password: pw, PublicKey: pub})
		return err
	}
	for i := 0; i < 3; i++ {
		if err := login("wrong password"); !authclient.IsUnauthenticated(err) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Even the right password is refused while the user is limited.
	if err := login("correct horse"); !authclient.IsRateLimited(err) {
		t.Fatalf("after 3 failures: %v, want rate limited", err)
	}
	tc.Clock.Advance(10*time.Minute + time.Second)
	if err := login("correct horse"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestLoginRateLimitedPerSource(t *testing.T) {
	tc := authtest.Start(t, authtest.WithConfig(func(c *auth.Config) { c.MaxSourceLoginAttempts = 4 }))
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	pub, _ := authtest.KeyPair(t)
	anon := tc.Anon(t)
	for _, u := range []string{"u1", "u2", "u3", "u4"} {
		_, err := anon.Login(context.Background(), authclient.LoginRequest{Username: u, Password: "guess guess", PublicKey: pub})
		if !authclient.IsUnauthenticated(err) {
			t.Fatalf("%s: %v", u, err)
		}
	}
	_, err := anon.Login(context.Background(), authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub})
	if !authclient.IsRateLimited(err) {
		t.Fatalf("a spraying source was not limited: %v", err)
	}
}

func TestLockedUserRefusedCertificates(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	alice, _, _ := tc.Login(t, "alice", "correct horse")

	lock, err := tc.Admin().CreateLock(ctx, authclient.CreateLockRequest{Target: policy.LockTarget{User: "alice"}, Message: "laptop stolen"})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := authtest.KeyPair(t)
	_, err = tc.Anon(t).Login(ctx, authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub})
	if !authclient.IsLocked(err) {
		t.Fatalf("login while locked: %v, want locked", err)
	}
	_, err = alice.SignRoute(ctx, authclient.RouteRequest{PublicKey: pub, ServiceName: "pg1", DBUser: "alice"})
	if !authclient.IsLocked(err) {
		t.Fatalf("route certificate while locked: %v, want locked", err)
	}
	if locks, err := tc.Admin().ListLocks(ctx); err != nil || len(locks) != 1 {
		t.Fatalf("locks = %v, %v", locks, err)
	}
	if err := tc.Admin().DeleteLock(ctx, lock.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Anon(t).Login(ctx, authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub}); err != nil {
		t.Fatalf("login after unlock: %v", err)
	}
}

func TestLockExpires(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	if _, err := tc.Admin().CreateLock(ctx, authclient.CreateLockRequest{Target: policy.LockTarget{Role: "access"}, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pub, _ := authtest.KeyPair(t)
	if _, err := tc.Anon(t).Login(ctx, authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub}); !authclient.IsLocked(err) {
		t.Fatalf("role lock: %v", err)
	}
	tc.Clock.Advance(2 * time.Minute)
	if _, err := tc.Anon(t).Login(ctx, authclient.LoginRequest{Username: "alice", Password: "correct horse", PublicKey: pub}); err != nil {
		t.Fatalf("after the lock expired: %v", err)
	}
}

func TestSignupWithTOTP(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	resp, err := tc.Admin().CreateUser(ctx, authclient.CreateUserRequest{User: authclient.User{Name: "bob", Roles: []string{"access"}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.SignupToken == "" || !resp.User.Pending {
		t.Fatalf("no sign-up token: %+v", resp)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "test", AccountName: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.GenerateCode(key.Secret(), tc.Clock.Now())
	anon := tc.Anon(t)
	if _, err := anon.Signup(ctx, authclient.SignupRequest{Token: resp.SignupToken, Password: "short"}); err == nil {
		t.Fatal("a short password was accepted")
	}
	if _, err := anon.Signup(ctx, authclient.SignupRequest{Token: resp.SignupToken, Password: "bob's password", TOTPSecret: key.Secret(), TOTPCode: code}); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Signup(ctx, authclient.SignupRequest{Token: resp.SignupToken, Password: "another password"}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("the sign-up token worked twice: %v", err)
	}
	pub, _ := authtest.KeyPair(t)
	if _, err := anon.Login(ctx, authclient.LoginRequest{Username: "bob", Password: "bob's password", PublicKey: pub}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("login without the one-time code: %v", err)
	}
	tc.Clock.Advance(31 * time.Second)
	code, _ = totp.GenerateCode(key.Secret(), tc.Clock.Now())
	if _, err := anon.Login(ctx, authclient.LoginRequest{Username: "bob", Password: "bob's password", OTP: code, PublicKey: pub}); err != nil {
		t.Fatalf("login with the one-time code: %v", err)
	}
	if _, err := anon.Login(ctx, authclient.LoginRequest{Username: "bob", Password: "bob's password", OTP: code, PublicKey: pub}); !authclient.IsUnauthenticated(err) {
		t.Fatalf("a one-time code worked twice: %v", err)
	}
}
