package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// daemon runs `portcullis start` in-process until the test ends.
type daemon struct {
	cancel context.CancelFunc
	done   chan int
	mu     sync.Mutex
	out    bytes.Buffer
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

func startDaemon(t *testing.T, config string) *daemon {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portcullis.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{cancel: cancel, done: make(chan int, 1)}
	go func() { d.done <- run(ctx, []string{"start", "--config", path}, d, d) }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	d.cancel()
	select {
	case code := <-d.done:
		if code != 0 {
			t.Errorf("portcullis start exited %d:\n%s", code, d.log())
		}
		d.done <- code
	case <-time.After(30 * time.Second):
		t.Errorf("portcullis start did not stop:\n%s", d.log())
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func adminClient(t *testing.T, dataDir string) *authclient.Client {
	t.Helper()
	var addr []byte
	waitFor(t, "the auth service to start", 20*time.Second, func() bool {
		var err error
		addr, err = os.ReadFile(filepath.Join(dataDir, auth.AddrFile))
		if err != nil {
			return false
		}
		// The address may be written before the admin identity.
		_, err = os.Stat(filepath.Join(dataDir, auth.AdminIdentityFile))
		return err == nil
	})
	f, err := authclient.ReadIdentityFile(filepath.Join(dataDir, auth.AdminIdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := authclient.New(strings.TrimSpace(string(addr)), authclient.WithTLSConfig(f.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestAgentJoinsThroughTheProxyAlone(t *testing.T) {
	clusterDir := t.TempDir()
	proxyAddr := freeAddr(t)
	startDaemon(t, fmt.Sprintf(`
data_dir: %s
cluster_name: e2e
auth: {enabled: true, listen: "127.0.0.1:0"}
proxy: {enabled: true, listen: %q}
`, clusterDir, proxyAddr))
	admin := adminClient(t, clusterDir)
	ctx := context.Background()
	tok, err := admin.CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}

	agentDir := t.TempDir()
	agent := startDaemon(t, fmt.Sprintf(`
data_dir: %s
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  host_id: agent-1
  heartbeat_interval: 500ms
  databases:
    - {name: pg1, protocol: postgres, uri: "127.0.0.1:5432", labels: {env: dev}}
    - {name: my1, protocol: mysql, uri: "127.0.0.1:3306"}
`, agentDir, proxyAddr, tok.Secret))

	took := waitFor(t, "the agent's databases in the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(ctx)
		return err == nil && len(dbs) == 2
	})
	t.Logf("databases listed %v after the agent started", took)
	dbs, _ := admin.ListDatabases(ctx)
	if dbs[1].Name != "pg1" || dbs[1].HostID != "agent-1" || dbs[1].Labels["env"] != "dev" {
		t.Errorf("inventory = %+v", dbs)
	}
	// The agent saved its credentials; the token is not needed again.
	if fi, err := os.Stat(filepath.Join(agentDir, "db", "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent key: %v", err)
	}

	agent.stop(t)
	took = waitFor(t, "the stopped agent's databases to leave the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(ctx)
		return err == nil && len(dbs) == 0
	})
	t.Logf("databases left the inventory %v after the agent stopped (heartbeat TTL 1.5s)", took)
}

func TestAllRolesInOneProcessNeedNoToken(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, fmt.Sprintf(`
data_dir: %s
auth: {enabled: true, listen: "127.0.0.1:0"}
proxy: {enabled: true, listen: "127.0.0.1:0"}
db:
  enabled: true
  heartbeat_interval: 500ms
  databases:
    - {name: pg1, protocol: postgres, uri: "127.0.0.1:5432"}
`, dir))
	admin := adminClient(t, dir)
	waitFor(t, "the local agent's database in the inventory", 20*time.Second, func() bool {
		dbs, err := admin.ListDatabases(context.Background())
		return err == nil && len(dbs) == 1
	})
	// The agent reached the Auth service through the proxy's tunnel, as in
	// production: its heartbeats arrive over the forwarded auth channel.
	if !strings.Contains(d.log(), "databases registered with the cluster") {
		t.Errorf("no registration in the log:\n%s", d.log())
	}
	for _, sub := range []string{"proxy", "db"} {
		if _, err := os.Stat(filepath.Join(dir, sub, "key.pem")); err != nil {
			t.Errorf("%s credentials: %v", sub, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"auth: {enabled: true}", "data_dir"},
		{"data_dir: x", "enables no role"},
		{"data_dir: x\nauth: {enabled: true, lisen: y}", "lisen"},
		{"data_dir: x\nproxy: {enabled: true}", "proxy.auth_addr"},
		{"data_dir: x\ndb: {enabled: true}", "db.proxy_addr"},
		{"data_dir: x\ndiag_addr: '0.0.0.0:3000'\nauth: {enabled: true}", "not a loopback address"},
		{"data_dir: x\ndiag_addr: 'example.com:3000'\nauth: {enabled: true}", "not a loopback address"},
		{"data_dir: x\ndiag_addr: '3000'\nauth: {enabled: true}", "not host:port"},
		{"data_dir: x\ndb: {enabled: true, proxy_addr: 'p:1', databases: [{name: a, protocol: oracle, uri: 'h:1'}]}", "oracle"},
		{"data_dir: x\ndb: {enabled: true, proxy_addr: 'p:1', databases: [{name: a, protocol: postgres, uri: 'h:1'}, {name: a, protocol: mysql, uri: 'h:2'}]}", "twice"},
	} {
		_, err := ParseConfig([]byte(tt.yaml), "/")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tt.yaml, err, tt.want)
		}
	}
}

func TestDiagnostics(t *testing.T) {
	dir := t.TempDir()
	diag := freeAddr(t)
	startDaemon(t, fmt.Sprintf("data_dir: %s\ndiag_addr: %q\nauth: {enabled: true, listen: \"127.0.0.1:0\"}\n", dir, diag))
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get("http://" + diag + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, body
	}
	waitFor(t, "the diagnostics endpoint", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + diag + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	if code, body := get("/healthz"); code != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// The Auth service's goroutines are in the dump: it profiles this
	// daemon, not some other handler.
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !bytes.Contains(body, []byte("goroutine profile:")) || !bytes.Contains(body, []byte("ca/auth.")) {
		t.Errorf("/debug/pprof/goroutine: %d\n%.2000s", code, body)
	}
	code, body := get("/debug/pprof/profile?seconds=1")
	if code != http.StatusOK {
		t.Fatalf("/debug/pprof/profile: %d %s", code, body)
	}
	// A profile is a gzipped protocol buffer.
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/debug/pprof/profile is not gzip: %v", err)
	}
	if pb, err := io.ReadAll(zr); err != nil || len(pb) == 0 {
		t.Errorf("/debug/pprof/profile: %d bytes, %v", len(pb), err)
	}
}

// An agent's /readyz follows its reverse tunnels: ready while one is up,
// 503 with the reason once the proxy is gone.
func TestAgentReadiness(t *testing.T) {
	clusterDir := t.TempDir()
	proxyAddr := freeAddr(t)
	cluster := startDaemon(t, fmt.Sprintf(`
data_dir: %s
auth: {enabled: true, listen: "127.0.0.1:0"}
proxy: {enabled: true, listen: %q}
`, clusterDir, proxyAddr))
	admin := adminClient(t, clusterDir)
	tok, err := admin.CreateToken(context.Background(), authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	diag := freeAddr(t)
	startDaemon(t, fmt.Sprintf(`
data_dir: %s
diag_addr: %q
db:
  enabled: true
  proxy_addr: %q
  join_token: %q
  databases:
    - {name: pg1, protocol: postgres, uri: "127.0.0.1:5432"}
`, t.TempDir(), diag, proxyAddr, tok.Secret))

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + diag + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	var body string
	waitFor(t, "the agent to be ready", 20*time.Second, func() bool {
		code, body = readyz()
		return code == http.StatusOK
	})
	if body != "ok\n" {
		t.Errorf("/readyz when ready: %q", body)
	}

	cluster.stop(t)
	waitFor(t, "the agent to report its tunnel down", 20*time.Second, func() bool {
		code, body = readyz()
		return code == http.StatusServiceUnavailable
	})
	t.Logf("/readyz without a proxy: %s", body)
	if !strings.HasPrefix(body, "db: no reverse tunnel to a proxy is up") || strings.Count(body, "\n") != 1 {
		t.Errorf("/readyz without a proxy: %q", body)
	}
}
