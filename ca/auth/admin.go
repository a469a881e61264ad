package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
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
	AdminIdentityFile = authclient.AdminIdentityFile
	AddrFile          = authclient.AddrFile
)

// IssueHostCredentials signs host certificates for a component that runs in
// the same process as the Auth service (a proxy or agent started from the
// same configuration), which needs no join token. The arguments are those
// of a join request.
func (s *Server) IssueHostCredentials(ctx context.Context, req authclient.JoinRequest) (*authclient.JoinResponse, error) {
	if req.Role != ca.SystemRoleProxy && req.Role != ca.SystemRoleDatabase {
		return nil, fmt.Errorf("auth: host credentials are for role %s or %s, not %q", ca.SystemRoleProxy, ca.SystemRoleDatabase, req.Role)
	}
	if req.HostID == "" {
		req.HostID = randomID()
	}
	if err := policy.ValidateName("host", req.HostID); err != nil {
		return nil, err
	}
	if err := s.recordHost(ctx, req.HostID, req.Role, "local"); err != nil {
		return nil, err
	}
	c := &caller{id: &ca.Identity{Kind: ca.KindHost, Username: req.HostID, Roles: []string{req.Role}}}
	return s.issueHostCerts(ctx, c, req.HostID, []string{req.Role}, req.PublicKey, req.SSHPublicKey, req.DNSNames, req.IPAddresses)
}
