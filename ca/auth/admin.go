package auth

import (
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// AdminIdentityTTL is the lifetime of the admin identity file.
const AdminIdentityTTL = 30 * 24 * time.Hour

// AdminUsername names the admin identity in audit events.
const AdminUsername = "admin"

// WriteAdminIdentity writes the identity pctl uses on the Auth host: a new
// key, a host certificate with the Admin system role, and the host CA, in
// one 0600 file. Call it at every start so the file never expires while
// the service runs for less than ttl.
func (s *Server) WriteAdminIdentity(path string, ttl time.Duration) error {
	key, err := ca.GenerateKey()
	if err != nil {
		return err
	}
	host := s.cluster.authority(ca.HostCA)
	cert, err := host.Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: s.cluster.name,
			Username: AdminUsername, Roles: []string{ca.SystemRoleAdmin}},
		TTL: ttl,
	})
	if err != nil {
		return err
	}
	f := &authclient.IdentityFile{Key: key, Cert: cert, HostCAs: s.cluster.certs(ca.HostCA)}
	return f.Write(path)
}

// Files the Auth service keeps in its data dir for pctl on the same host.
const (
	// AdminIdentityFile is the admin identity (see WriteAdminIdentity).
	AdminIdentityFile = "admin-identity.pem"
	// AddrFile holds the host:port the API listens on.
	AddrFile = "auth.addr"
)
