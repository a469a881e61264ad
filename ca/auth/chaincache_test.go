package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newCacheServer starts no listener: it returns a Server for calling
// verifyChain directly, and its clock.
func newCacheServer(t *testing.T) (*Server, *testClock) {
	t.Helper()
	clk := &testClock{now: time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "state.db"), boltstore.Options{Clock: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(context.Background(), Config{Storage: st, ClusterName: "test", Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// hostChain signs a database agent's certificate with a, for ttl.
func hostChain(t *testing.T, a *ca.Authority, name string, ttl time.Duration) []*x509.Certificate {
	t.Helper()
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := a.Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity:  ca.Identity{Kind: ca.KindHost, Username: name, Roles: []string{ca.SystemRoleDatabase}},
		TTL:       ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{cert}
}

func apiCode(err error) string {
	var ae *authclient.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

func TestChainCacheAnswersRepeatedCalls(t *testing.T) {
	s, _ := newCacheServer(t)
	chain := hostChain(t, s.cluster.authority(ca.HostCA), "agent-1", time.Hour)
	first, err := s.verifyChain(chain)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		id, err := s.verifyChain(chain)
		if err != nil || !reflect.DeepEqual(id, first) {
			t.Fatalf("cached identity %+v, %v; want %+v", id, err, first)
		}
		// What a caller does to its identity stays with it.
		id.Roles[0], id.Username = "Admin", "someone-else"
	}
	if n, hits := s.chains.stats(); n != 1 || hits != 3 {
		t.Errorf("cache holds %d chains and answered %d lookups, want 1 and 3", n, hits)
	}
	// The same certificate with a different chain is another entry.
	withCA := append(chain[:1:1], s.cluster.authority(ca.HostCA).Cert)
	if id, err := s.verifyChain(withCA); err != nil || id.Username != "agent-1" {
		t.Fatalf("chain with its CA: %+v, %v", id, err)
	}
	if n, _ := s.chains.stats(); n != 2 {
		t.Errorf("cache holds %d chains, want 2", n)
	}
}

func TestChainCacheNeverOutlivesTheCertificate(t *testing.T) {
	s, clk := newCacheServer(t)
	start := clk.Now()
	chain := hostChain(t, s.cluster.authority(ca.HostCA), "agent-1", time.Hour)
	if _, err := s.verifyChain(chain); err != nil {
		t.Fatal(err)
	}
	clk.Set(chain[0].NotAfter)
	if _, err := s.verifyChain(chain); err != nil {
		t.Fatalf("at NotAfter (still valid): %v", err)
	}
	clk.Set(chain[0].NotAfter.Add(time.Second))
	_, err := s.verifyChain(chain)
	if apiCode(err) != authclient.CodeCertExpired {
		t.Fatalf("after NotAfter: %v, want %s", err, authclient.CodeCertExpired)
	}
	if n, _ := s.chains.stats(); n != 0 {
		t.Errorf("the expired chain is still cached")
	}
	// A clock set back before NotBefore refuses it too.
	clk.Set(start)
	if _, err := s.verifyChain(chain); err != nil {
		t.Fatal(err)
	}
	clk.Set(chain[0].NotBefore.Add(-time.Minute))
	if _, err := s.verifyChain(chain); apiCode(err) != authclient.CodeUnauthenticated {
		t.Fatalf("before NotBefore: %v, want %s", err, authclient.CodeUnauthenticated)
	}
}

func TestChainCacheForgetsChainsOfAReplacedAuthority(t *testing.T) {
	s, clk := newCacheServer(t)
	chain := hostChain(t, s.cluster.authority(ca.HostCA), "agent-1", time.Hour)
	if _, err := s.verifyChain(chain); err != nil {
		t.Fatal(err)
	}
	// The host CA changes (as a rotation would, with a new certificate).
	next, err := ca.NewAuthority(ca.HostCA, "test", clk.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.cluster.auths[ca.HostCA] = next
	if _, err := s.verifyChain(chain); apiCode(err) != authclient.CodeUnauthenticated {
		t.Fatalf("chain of the replaced CA: %v, want %s", err, authclient.CodeUnauthenticated)
	}
	if id, err := s.verifyChain(hostChain(t, next, "agent-2", time.Hour)); err != nil || id.Username != "agent-2" {
		t.Fatalf("chain of the new CA: %+v, %v", id, err)
	}
}

// Refused chains are not cached: each call is refused with its reason.
func TestChainCacheKeepsRefusals(t *testing.T) {
	s, _ := newCacheServer(t)
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	route, err := s.cluster.authority(ca.UserCA).Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindUser, Username: "alice", Roles: []string{"access"},
			Route: &ca.Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}},
		TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	session, err := s.cluster.authority(ca.HostCA).Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindSession, Username: "alice", Roles: []string{"access"},
			Route: &ca.Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice", DBName: "app"}},
		TTL: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	foreignCA, err := ca.NewAuthority(ca.HostCA, "test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign := hostChain(t, foreignCA, "agent-1", time.Hour)
	for range 2 {
		for _, tc := range []struct {
			name  string
			chain []*x509.Certificate
			code  string
		}{
			{"route", []*x509.Certificate{route}, authclient.CodeAccessDenied},
			{"session", []*x509.Certificate{session}, authclient.CodeAccessDenied},
			{"foreign", foreign, authclient.CodeUnauthenticated},
		} {
			if _, err := s.verifyChain(tc.chain); apiCode(err) != tc.code {
				t.Errorf("%s certificate: %v, want %s", tc.name, err, tc.code)
			}
		}
	}
	if n, _ := s.chains.stats(); n != 0 {
		t.Errorf("%d refused chains cached", n)
	}
}

func TestChainCacheIsBounded(t *testing.T) {
	c := newChainCache(3)
	trust := trustSet{}
	now := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	cert := &x509.Certificate{NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	key := func(i int) chainKey { return chainKey{byte(i)} }
	for i := range 3 {
		c.add(key(i), trust, []*x509.Certificate{cert}, &ca.Identity{Username: fmt.Sprint(i)})
	}
	if c.get(key(0), trust, now) == nil { // 0 is now the most recently used
		t.Fatal("entry 0 missing")
	}
	c.add(key(3), trust, []*x509.Certificate{cert}, &ca.Identity{Username: "3"})
	c.add(key(4), trust, []*x509.Certificate{cert}, &ca.Identity{Username: "4"})
	for i, want := range []bool{true, false, false, true, true} {
		if got := c.get(key(i), trust, now) != nil; got != want {
			t.Errorf("entry %d cached: %v, want %v", i, got, want)
		}
	}
	if n, _ := c.stats(); n != 3 {
		t.Errorf("cache holds %d entries, want 3", n)
	}
}
