package dbagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/hostcert"
	"github.com/portcullis-db/portcullis/ca/policy"
)

const (
	// policyTTL is how long roles and locks read from the Auth service are
	// used before they are read again.
	policyTTL = 5 * time.Second
	// policyMaxStale is how long they may still be used while the Auth
	// service cannot be reached; past that, sessions are refused.
	policyMaxStale = 5 * time.Minute
)

// policyCache holds the roles and locks the agent checks sessions against,
// read from the Auth service and refreshed every policyTTL.
type policyCache struct {
	client func() (*authclient.Client, error)
	clock  func() time.Time

	mu      sync.Mutex
	fetched time.Time // last successful read
	tried   time.Time // last attempt: at most one per policyTTL
	roles   map[string]*policy.Role
	locks   []policy.Lock
}

func (p *policyCache) get(ctx context.Context) (map[string]*policy.Role, []policy.Lock, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	fresh := !p.fetched.IsZero() && now.Sub(p.fetched) < policyTTL
	usable := !p.fetched.IsZero() && now.Sub(p.fetched) < policyMaxStale
	if fresh || (usable && now.Sub(p.tried) < policyTTL) {
		return p.roles, p.locks, nil
	}
	p.tried = now
	roles, locks, err := p.fetch(ctx)
	if err != nil {
		if usable {
			return p.roles, p.locks, nil
		}
		return nil, nil, &unavailableError{err: err}
	}
	p.roles, p.locks, p.fetched = roles, locks, now
	return roles, locks, nil
}

func (p *policyCache) fetch(ctx context.Context) (map[string]*policy.Role, []policy.Lock, error) {
	c, err := p.client()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	list, err := c.ListRoles(ctx)
	if err != nil {
		return nil, nil, err
	}
	locks, err := c.ListLocks(ctx)
	if err != nil {
		return nil, nil, err
	}
	roles := make(map[string]*policy.Role, len(list))
	for _, r := range list {
		roles[r.Metadata.Name] = r
	}
	return roles, locks, nil
}

// unavailableError says the agent could not read the policy it needs.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return "the database agent cannot reach the auth service to check your access; try again shortly"
}

func (e *unavailableError) Unwrap() error { return e.err }

// authorize decides whether id may use db as dbUser on dbName.
func (s *Service) authorize(ctx context.Context, id *ca.Identity, db *Database, dbUser, dbName string) error {
	roles, locks, err := s.policy.get(ctx)
	if err != nil {
		return err
	}
	if err := policy.CheckLocks(locks, id.Username, id.Roles, s.now()); err != nil {
		return err
	}
	var held []*policy.Role
	for _, name := range id.Roles {
		if r, ok := roles[name]; ok {
			held = append(held, r)
		}
	}
	checker := policy.NewAccessChecker(held, id.Traits)
	return checker.CheckDatabaseAccess(policy.Database{Name: db.Name, Protocol: db.Protocol, Labels: db.Labels}, dbUser, dbName)
}

// verifySession checks the certificate a proxy presented for a session:
// a session certificate from the host CA that carries a route.
func (s *Service) verifySession(creds *hostcert.Credentials, chain []*x509.Certificate) (*ca.Identity, error) {
	v := &ca.Verifier{
		Roots:       creds.HostCAs,
		Kinds:       []ca.CertKind{ca.KindSession},
		Usage:       x509.ExtKeyUsageClientAuth,
		ClusterName: creds.ClusterName,
		Clock:       s.now,
	}
	id, err := v.Verify(chain)
	if err != nil {
		return nil, err
	}
	if id.Route == nil {
		return nil, errors.New("the session certificate carries no database route")
	}
	return id, nil
}

// sessionTLSConfig is the agent's side of the mutual TLS inside a tunnel
// channel: its host certificate, and the proxy's session certificate
// required (verified by verifySession with the agent's clock). It is one
// configuration for all sessions so that its session tickets let a proxy
// resume: a resumed session carries the session certificate of the
// handshake that made it (Go does not resume one whose certificate
// expired), which verifySession checks again like a new one.
func (s *Service) sessionTLSConfig() *tls.Config {
	s.tlsOnce.Do(func() {
		s.tlsConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return s.Credentials.Current().TLSCertificate(), nil
			},
			ClientAuth: tls.RequireAnyClientCert,
			Time:       s.now,
			// Inside the tunnel, records sized for TCP segments only cost
			// bulk transfers more records and SSH packets.
			DynamicRecordSizingDisabled: true,
		}
	})
	return s.tlsConfig
}

// dbCertCache holds the client certificates the agent presents to
// databases, one per database user, until they near expiry.
type dbCertCache struct {
	client func() (*authclient.Client, error)
	clock  func() time.Time

	mu    sync.Mutex
	certs map[string]*dbCert
}

type dbCert struct {
	mu      sync.Mutex // held while fetching, so one fetch serves all waiters
	cert    *tls.Certificate
	renewAt time.Time
}

// get returns a client certificate for dbUser, signed by the database CA.
func (c *dbCertCache) get(ctx context.Context, dbUser string) (*tls.Certificate, error) {
	c.mu.Lock()
	if c.certs == nil {
		c.certs = map[string]*dbCert{}
	}
	e := c.certs[dbUser]
	if e == nil {
		e = &dbCert{}
		c.certs[dbUser] = e
	}
	c.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cert != nil && c.clock().Before(e.renewAt) {
		return e.cert, nil
	}
	key, err := ca.GenerateKey()
	if err != nil {
		return nil, err
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	ac, err := c.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := ac.SignDatabaseCert(ctx, authclient.DatabaseCertRequest{PublicKey: pub, DBUser: dbUser})
	if err != nil {
		return nil, fmt.Errorf("getting a client certificate for database user %s: %w", dbUser, err)
	}
	leaf, err := ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		return nil, err
	}
	e.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	// Renew at 80% of the certificate's life.
	e.renewAt = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 4 / 5)
	return e.cert, nil
}
