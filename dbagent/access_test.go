package dbagent

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/protocol/postgres"
)

// fakeAuth serves the two calls the policy cache makes, and can be made to
// fail.
type fakeAuth struct {
	calls atomic.Int32
	down  atomic.Bool
}

func (f *fakeAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if f.down.Load() {
		http.Error(w, `{"error":{"code":"internal","message":"down"}}`, http.StatusBadGateway)
		return
	}
	switch r.URL.Path {
	case "/v1/roles":
		w.Write([]byte(`[{"kind":"role","version":"v1","metadata":{"name":"access"},"spec":{"allow":{"db_labels":{"*":["*"]},"db_users":["{{internal.db_users}}"],"db_names":["*"]}}}]`))
	case "/v1/locks":
		w.Write([]byte(`[]`))
	default:
		http.NotFound(w, r)
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newPolicyCache(t *testing.T) (*policyCache, *fakeAuth, *clock) {
	t.Helper()
	fa := &fakeAuth{}
	srv := httptest.NewTLSServer(fa)
	t.Cleanup(srv.Close)
	api, err := authclient.New(strings.TrimPrefix(srv.URL, "https://"),
		authclient.WithTLSConfig(authclient.TLSConfig(nil, []*x509.Certificate{srv.Certificate()})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	clk := &clock{now: time.Now()}
	return &policyCache{client: func() (*authclient.Client, error) { return api, nil }, clock: clk.Now}, fa, clk
}

func TestPolicyCacheRefreshesAndSurvivesAnOutage(t *testing.T) {
	p, fa, clk := newPolicyCache(t)
	ctx := context.Background()
	roles, _, err := p.get(ctx)
	if err != nil || roles["access"] == nil {
		t.Fatalf("first read: %v, %v", roles, err)
	}
	calls := fa.calls.Load()
	if _, _, err := p.get(ctx); err != nil || fa.calls.Load() != calls {
		t.Fatalf("a fresh cache read the Auth service again (%d calls, %v)", fa.calls.Load()-calls, err)
	}
	// Past the TTL it reads again.
	clk.Add(policyTTL + time.Second)
	if _, _, err := p.get(ctx); err != nil || fa.calls.Load() == calls {
		t.Fatalf("a stale cache was not refreshed: %v", err)
	}
	// While the Auth service is down the last policy is used, and retried
	// at most once per TTL.
	fa.down.Store(true)
	clk.Add(policyTTL + time.Second)
	if roles, _, err := p.get(ctx); err != nil || roles["access"] == nil {
		t.Fatalf("during an outage: %v", err)
	}
	calls = fa.calls.Load()
	if _, _, err := p.get(ctx); err != nil || fa.calls.Load() != calls {
		t.Fatalf("retried the Auth service within one TTL (%v)", err)
	}
	// Past policyMaxStale, sessions are refused with a sentence.
	clk.Add(policyMaxStale)
	_, _, err = p.get(ctx)
	var ue *unavailableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach the auth service") {
		t.Fatalf("after the stale limit: %v", err)
	}
}

func TestPolicyCacheRefusesWithoutAnyPolicy(t *testing.T) {
	p, fa, _ := newPolicyCache(t)
	fa.down.Store(true)
	if _, _, err := p.get(context.Background()); err == nil {
		t.Fatal("a session was let through with no policy ever read")
	}
}

func TestDatabaseValidate(t *testing.T) {
	for _, tt := range []struct {
		db   Database
		want string
	}{
		{Database{Protocol: "postgres", URI: "h:1"}, "needs a name"},
		{Database{Name: "a", Protocol: "oracle", URI: "h:1"}, "oracle"},
		{Database{Name: "a", Protocol: "postgres"}, "needs a uri"},
		{Database{Name: "a", Protocol: "mysql", URI: "nohostport"}, "not host:port"},
		{Database{Name: "a", Protocol: "mysql", URI: "db:3306"}, ""},
	} {
		err := tt.db.Validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", tt.db, err, tt.want)
		}
	}
}

func TestCancelKeysMapToTheirSessions(t *testing.T) {
	var c pgCancels
	db := &Database{Name: "pg1"}
	fake := postgres.BackendKey{ProcessID: 7, Secret: []byte{1, 2, 3, 4}}
	real := postgres.BackendKey{ProcessID: 4242, Secret: []byte{9, 9, 9, 9}}
	k := c.add(fake, pgCancelTarget{db: db, user: "alice", real: real})
	got, ok := c.get(postgres.BackendKey{ProcessID: 7, Secret: []byte{1, 2, 3, 4}})
	if !ok || got.real.ProcessID != 4242 || got.user != "alice" {
		t.Fatalf("lookup: %+v %v", got, ok)
	}
	if _, ok := c.get(postgres.BackendKey{ProcessID: 7, Secret: []byte{1, 2, 3, 5}}); ok {
		t.Fatal("a wrong secret found the session")
	}
	c.remove(k)
	if _, ok := c.get(fake); ok {
		t.Fatal("the key outlived its session")
	}
}
