package hostcert

import (
	"context"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// Renewer signs new host certificates for the key in req, authenticating
// with cur (usually authclient.Client.RenewHost on a client built from
// cur.AuthTLSConfig).
type Renewer func(ctx context.Context, cur *Credentials, req authclient.RenewRequest) (*authclient.JoinResponse, error)

// A Manager holds a component's current credentials and renews them, with
// a fresh key each time, when half their life has passed.
type Manager struct {
	// Dir is where renewed credentials are saved; "" keeps them in memory.
	Dir string
	// Renew obtains new certificates. Required for Run.
	Renew Renewer
	// DNSNames and IPAddresses go into renewed certificates.
	DNSNames    []string
	IPAddresses []string
	// Logger logs renewals (default: no-op).
	Logger *zap.Logger
	// Clock tells the time (default time.Now).
	Clock func() time.Time

	cur atomic.Pointer[Credentials]
}

// NewManager returns a manager holding c.
func NewManager(c *Credentials) *Manager {
	m := &Manager{}
	m.cur.Store(c)
	return m
}

// Current returns the credentials in force.
func (m *Manager) Current() *Credentials { return m.cur.Load() }

func (m *Manager) now() time.Time {
	if m.Clock != nil {
		return m.Clock()
	}
	return time.Now()
}

// Run renews the credentials at half-life until ctx is done. A failed
// renewal is retried every tenth of the remaining life (at least every 10s,
// at most every minute) and logged.
func (m *Manager) Run(ctx context.Context) error {
	log := m.Logger
	if log == nil {
		log = zap.NewNop()
	}
	for {
		cur := m.Current()
		wait := cur.RenewAt().Sub(m.now())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := m.RenewNow(ctx); err != nil {
			retry := min(max(cur.Cert.NotAfter.Sub(m.now())/10, 10*time.Second), time.Minute)
			log.Warn("renewing host certificates failed; retrying", zap.Duration("in", retry),
				zap.Time("expires", cur.Cert.NotAfter), zap.Error(err))
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retry):
			}
		}
	}
}

// RenewNow renews the credentials at once.
func (m *Manager) RenewNow(ctx context.Context) error {
	cur := m.Current()
	next, err := Obtain(ctx, func(ctx context.Context, req authclient.JoinRequest) (*authclient.JoinResponse, error) {
		return m.Renew(ctx, cur, authclient.RenewRequest{
			PublicKey:    req.PublicKey,
			SSHPublicKey: req.SSHPublicKey,
			DNSNames:     m.DNSNames,
			IPAddresses:  m.IPAddresses,
		})
	}, Request{Role: cur.Role, HostID: cur.HostID})
	if err != nil {
		return err
	}
	if m.Dir != "" {
		if err := next.Save(m.Dir); err != nil {
			return err
		}
	}
	m.cur.Store(next)
	if m.Logger != nil {
		m.Logger.Info("renewed host certificates", zap.String("host_id", next.HostID), zap.Time("expires", next.Cert.NotAfter))
	}
	return nil
}

// NeedsReplacing reports whether saved credentials cannot be used: expired,
// or for another role or cluster.
func (c *Credentials) NeedsReplacing(role string, now time.Time) bool {
	return c.Role != role || !now.Before(c.Cert.NotAfter) || c.Cert.NotBefore.After(now.Add(time.Minute)) ||
		len(c.HostCAs) == 0 || (role != ca.SystemRoleAuth && c.SSHCert == nil)
}
