package auth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
	"github.com/portcullis-db/portcullis/ca/storage"
)

const (
	keyClusterName = "cluster/name"
	keyAuthHostID  = "cluster/auth_host_id"
	prefixCA       = "authorities/"
)

// storedAuthority is how an authority is kept in storage.
type storedAuthority struct {
	CertPEM string `json:"cert_pem"`
	KeyPEM  string `json:"key_pem"`
}

// cluster is the loaded, immutable-after-start part of the cluster's state
// plus the service's own certificate, which it renews.
type cluster struct {
	name   string
	hostID string
	cfg    *Config
	auths  map[ca.AuthorityType]*ca.Authority

	mu      sync.Mutex
	key     crypto.Signer
	tlsCert *tls.Certificate
	renewAt time.Time

	dummyOnce sync.Once
	dummy     []byte
}

func loadCluster(ctx context.Context, cfg *Config, log *zap.Logger) (*cluster, error) {
	st := cfg.Storage
	want := cfg.ClusterName
	if want == "" {
		want = "portcullis"
	}
	name, created, err := getOrCreate(ctx, st, keyClusterName, []byte(want))
	if err != nil {
		return nil, fmt.Errorf("auth: reading the cluster name: %w", err)
	}
	if cfg.ClusterName != "" && string(name) != cfg.ClusterName {
		return nil, fmt.Errorf("auth: the data dir holds cluster %q, not %q; certificates carry the name, so it cannot change", name, cfg.ClusterName)
	}
	cl := &cluster{name: string(name), cfg: cfg, auths: map[ca.AuthorityType]*ca.Authority{}}
	if created {
		log.Info("created a new cluster", zap.String("cluster", cl.name))
	}
	for _, t := range []ca.AuthorityType{ca.UserCA, ca.HostCA, ca.DatabaseCA} {
		a, err := loadAuthority(ctx, st, t, cl.name, cfg.Clock)
		if err != nil {
			return nil, err
		}
		cl.auths[t] = a
	}
	id, _, err := getOrCreate(ctx, st, keyAuthHostID, []byte(randomID()))
	if err != nil {
		return nil, fmt.Errorf("auth: reading the auth host ID: %w", err)
	}
	cl.hostID = string(id)
	if err := createPresetRoles(ctx, st); err != nil {
		return nil, err
	}
	key, err := ca.GenerateKey()
	if err != nil {
		return nil, err
	}
	cl.key = key
	if err := cl.renewServerCert(); err != nil {
		return nil, err
	}
	return cl, nil
}

// getOrCreate returns the value at key, storing def there first if absent.
func getOrCreate(ctx context.Context, st storage.Backend, key string, def []byte) ([]byte, bool, error) {
	_, err := st.Create(ctx, storage.Item{Key: key, Value: def})
	created := err == nil
	if err != nil && !storage.IsAlreadyExists(err) {
		return nil, false, err
	}
	it, err := st.Get(ctx, key)
	if err != nil {
		return nil, false, err
	}
	return it.Value, created, nil
}

func loadAuthority(ctx context.Context, st storage.Backend, t ca.AuthorityType, clusterName string, clock func() time.Time) (*ca.Authority, error) {
	key := prefixCA + string(t)
	it, err := st.Get(ctx, key)
	if storage.IsNotFound(err) {
		a, err := ca.NewAuthority(t, clusterName, clock, nil)
		if err != nil {
			return nil, err
		}
		keyPEM, err := a.KeyPEM()
		if err != nil {
			return nil, err
		}
		v, _ := json.Marshal(storedAuthority{CertPEM: string(a.CertPEM()), KeyPEM: string(keyPEM)})
		if _, err := st.Create(ctx, storage.Item{Key: key, Value: v}); err != nil && !storage.IsAlreadyExists(err) {
			return nil, fmt.Errorf("auth: storing the %s CA: %w", t, err)
		}
		it, err = st.Get(ctx, key)
		if err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("auth: reading the %s CA: %w", t, err)
	}
	var sa storedAuthority
	if err := json.Unmarshal(it.Value, &sa); err != nil {
		return nil, fmt.Errorf("auth: the stored %s CA is corrupt: %w", t, err)
	}
	a, err := ca.ParseAuthority(t, []byte(sa.CertPEM), []byte(sa.KeyPEM))
	if err != nil {
		return nil, fmt.Errorf("auth: the stored %s CA does not parse: %w", t, err)
	}
	a.ClusterName = clusterName
	a.Clock = clock
	return a, nil
}

func createPresetRoles(ctx context.Context, st storage.Backend) error {
	for _, r := range policy.PresetRoles() {
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = st.Create(ctx, storage.Item{Key: prefixRoles + r.Metadata.Name, Value: v})
		if err != nil && !storage.IsAlreadyExists(err) {
			return fmt.Errorf("auth: creating preset role %s: %w", r.Metadata.Name, err)
		}
	}
	return nil
}

func (cl *cluster) authority(t ca.AuthorityType) *ca.Authority { return cl.auths[t] }

func (cl *cluster) certs(t ca.AuthorityType) []*x509.Certificate {
	return []*x509.Certificate{cl.auths[t].Cert}
}

func (cl *cluster) verifier(t ca.AuthorityType) *ca.Verifier {
	return cl.verifierWithRoot(t, cl.auths[t].Cert)
}

// verifierWithRoot checks client certificates of the authority type t
// against root, the certificate of that authority.
func (cl *cluster) verifierWithRoot(t ca.AuthorityType, root *x509.Certificate) *ca.Verifier {
	kinds := []ca.CertKind{ca.KindUser}
	if t == ca.HostCA {
		kinds = []ca.CertKind{ca.KindHost, ca.KindSession}
	}
	return &ca.Verifier{
		Roots:       []*x509.Certificate{root},
		Kinds:       kinds,
		Usage:       x509.ExtKeyUsageClientAuth,
		ClusterName: cl.name,
		Clock:       cl.cfg.Clock,
	}
}

// serverCert returns the service's TLS certificate, renewing it at
// half-life.
func (cl *cluster) serverCert() *tls.Certificate {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.cfg.Clock().After(cl.renewAt) {
		if err := cl.renewServerCertLocked(); err != nil {
			cl.cfg.Logger.Error("failed to renew the auth service's certificate", zap.Error(err))
		}
	}
	return cl.tlsCert
}

func (cl *cluster) renewServerCert() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.renewServerCertLocked()
}

func (cl *cluster) renewServerCertLocked() error {
	dns := append([]string{"localhost", authclient.AuthServerName, cl.hostID}, cl.cfg.DNSNames...)
	ips := append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, cl.cfg.IPAddresses...)
	host := cl.auths[ca.HostCA]
	cert, err := host.Sign(ca.SignRequest{
		PublicKey:   cl.key.Public(),
		Identity:    ca.Identity{Kind: ca.KindHost, ClusterName: cl.name, Username: cl.hostID, Roles: []string{ca.SystemRoleAuth}},
		TTL:         cl.cfg.HostCertTTL,
		DNSNames:    dns,
		IPAddresses: ips,
	})
	if err != nil {
		return fmt.Errorf("auth: signing the auth service's certificate: %w", err)
	}
	cl.tlsCert = &tls.Certificate{
		Certificate: [][]byte{cert.Raw, host.Cert.Raw},
		PrivateKey:  cl.key,
		Leaf:        cert,
	}
	cl.renewAt = cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) / 2)
	return nil
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// dummyHash is a bcrypt hash of a random password, compared against when a
// login names no user so that the answer takes as long as a real one.
func (cl *cluster) dummyHash(cost int) []byte {
	cl.dummyOnce.Do(func() {
		h, err := bcrypt.GenerateFromPassword([]byte(randomID()), cost)
		if err != nil {
			panic(err) // only fails for an invalid cost, which setDefaults prevents
		}
		cl.dummy = h
	})
	return cl.dummy
}
