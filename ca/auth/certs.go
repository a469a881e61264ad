package auth

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

const (
	defaultDBServerCertTTL = 90 * 24 * time.Hour
	maxDBServerCertTTL     = 5 * 365 * 24 * time.Hour
	defaultDBClientCertTTL = time.Hour
	maxDBClientCertTTL     = 24 * time.Hour
)

// handleSignRoute issues a route certificate to the calling user. It never
// outlives the login certificate it was asked with.
func (s *Server) handleSignRoute(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if c.id.Kind != ca.KindUser {
		return apiError(authclient.CodeAccessDenied, "only users get route certificates")
	}
	var req authclient.RouteRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	if req.ServiceName == "" || req.DBUser == "" {
		return apiError(authclient.CodeBadRequest, "a route names the database and the database user (--db-user)")
	}
	db, err := s.findDatabase(ctx, req.ServiceName)
	if err != nil {
		return err
	}
	if req.Protocol == "" {
		req.Protocol = db.Protocol
	}
	if req.Protocol != db.Protocol {
		return apiError(authclient.CodeBadRequest, "database %q speaks %s, not %s", db.Name, db.Protocol, req.Protocol)
	}
	checker, err := s.checkerFor(ctx, c.id)
	if err != nil {
		return err
	}
	if err := checker.CheckDatabaseAccess(policyDatabase(db), req.DBUser, req.DBName); err != nil {
		return err
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = s.cfg.UserCertTTL
	}
	id := *c.id
	id.Route = &ca.Route{ServiceName: db.Name, Protocol: req.Protocol, DBUser: req.DBUser, DBName: req.DBName}
	cert, err := s.cluster.authority(ca.UserCA).Sign(ca.SignRequest{PublicKey: pub, Identity: id, TTL: ttl})
	if err != nil {
		return err
	}
	s.emitCert(ctx, c, audit.CertTypeRoute, cert)
	out := s.certsFor(cert, true)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleSignSession issues the certificate a proxy presents to an agent on
// behalf of a user. The proxy hands in the user's route certificate, which
// is verified again here: a proxy cannot mint identities.
func (s *Server) handleSignSession(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if !c.isHost(ca.SystemRoleProxy) {
		return apiError(authclient.CodeAccessDenied, "only proxies get session certificates")
	}
	var req authclient.SessionRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	userCert, err := ca.ParseCertPEM([]byte(req.UserCert))
	if err != nil {
		return apiError(authclient.CodeBadRequest, "user_cert does not parse: %v", err)
	}
	id, err := s.cluster.verifier(ca.UserCA).Verify([]*x509.Certificate{userCert})
	if err != nil {
		return apiError(authclient.CodeAccessDenied, "%s", sentence(err))
	}
	if id.Route == nil {
		return apiError(authclient.CodeBadRequest, "user_cert carries no database route")
	}
	if err := s.checkLocksFor(ctx, id.Username, id.Roles); err != nil {
		return err
	}
	ttl := req.TTL
	if ttl <= 0 || ttl > s.cfg.SessionCertTTL {
		ttl = s.cfg.SessionCertTTL
	}
	sid := *id
	sid.Kind = ca.KindSession
	cert, err := s.cluster.authority(ca.HostCA).Sign(ca.SignRequest{PublicKey: pub, Identity: sid, TTL: ttl})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.certsFor(cert, false))
	return nil
}

// handleSignDatabaseCert issues a database server certificate (for
// administrators configuring a self-hosted database) or a database client
// certificate (for agents connecting to one).
func (s *Server) handleSignDatabaseCert(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	var req authclient.DatabaseCertRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	if (len(req.Hosts) == 0) == (req.DBUser == "") {
		return apiError(authclient.CodeBadRequest, "ask for either a server certificate (hosts) or a client certificate (db_user)")
	}
	dbCA := s.cluster.authority(ca.DatabaseCA)
	var cert *x509.Certificate
	certType := audit.CertTypeDBServer
	if len(req.Hosts) > 0 {
		if err := s.authorize(ctx, c, policy.ResourceCluster, policy.VerbUpdate); err != nil {
			return err
		}
		cert, err = dbCA.SignDatabaseServer(pub, req.Hosts, clampTTL(req.TTL, defaultDBServerCertTTL, maxDBServerCertTTL))
	} else {
		if !c.isHost(ca.SystemRoleDatabase) && !c.isHost(ca.SystemRoleAdmin) {
			return apiError(authclient.CodeAccessDenied, "only database agents get database client certificates")
		}
		certType = audit.CertTypeDBClient
		cert, err = dbCA.SignDatabaseClient(pub, req.DBUser, clampTTL(req.TTL, defaultDBClientCertTTL, maxDBClientCertTTL))
	}
	if err != nil {
		return apiError(authclient.CodeBadRequest, "%s", sentence(err))
	}
	s.emitCert(ctx, c, certType, cert)
	out := s.certsFor(cert, false)
	out.DBCAs = certsPEM(s.cluster.certs(ca.DatabaseCA))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRenewHost renews the calling component's host certificates for
// new keys, keeping its host ID and system roles.
func (s *Server) handleRenewHost(w http.ResponseWriter, r *http.Request, c *caller) error {
	if c.id.Kind != ca.KindHost {
		return apiError(authclient.CodeAccessDenied, "only cluster components renew host certificates")
	}
	var req authclient.RenewRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	out, err := s.issueHostCerts(r.Context(), c, c.id.Username, c.id.Roles, req.PublicKey, req.SSHPublicKey, req.DNSNames, req.IPAddresses)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// issueHostCerts signs the X.509 and, if asked, SSH certificates of a host.
func (s *Server) issueHostCerts(ctx context.Context, c *caller, hostID string, roles []string, pubPEM, sshPub string, dns, ipStrs []string) (*authclient.JoinResponse, error) {
	pub, err := parsePublicKey(pubPEM)
	if err != nil {
		return nil, err
	}
	for _, name := range dns {
		if strings.EqualFold(strings.TrimSuffix(name, "."), authclient.AuthServerName) {
			return nil, apiError(authclient.CodeBadRequest, "the name %s is reserved for the auth service", authclient.AuthServerName)
		}
	}
	ips := make([]net.IP, 0, len(ipStrs))
	for _, s := range ipStrs {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, apiError(authclient.CodeBadRequest, "%q is not an IP address", s)
		}
		ips = append(ips, ip)
	}
	host := s.cluster.authority(ca.HostCA)
	cert, err := host.Sign(ca.SignRequest{
		PublicKey:   pub,
		Identity:    ca.Identity{Kind: ca.KindHost, ClusterName: s.cluster.name, Username: hostID, Roles: roles},
		TTL:         s.cfg.HostCertTTL,
		DNSNames:    append([]string{hostID}, dns...),
		IPAddresses: ips,
	})
	if err != nil {
		return nil, err
	}
	out := &authclient.JoinResponse{Certs: s.certsFor(cert, true), HostID: hostID, ClusterName: s.cluster.name}
	out.DBCAs = certsPEM(s.cluster.certs(ca.DatabaseCA))
	caKey, err := host.SSHPublicKey()
	if err != nil {
		return nil, err
	}
	out.SSHHostCA = []string{string(ssh.MarshalAuthorizedKey(caKey))}
	if sshPub != "" {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshPub))
		if err != nil {
			return nil, apiError(authclient.CodeBadRequest, "ssh_public_key does not parse: %v", err)
		}
		var sc *ssh.Certificate
		switch {
		case hasRole(roles, ca.SystemRoleProxy):
			principals := append([]string{hostID}, dns...)
			principals = append(principals, ipStrs...)
			sc, err = host.SignSSHHost(key, hostID, principals, s.cfg.HostCertTTL)
		case hasRole(roles, ca.SystemRoleDatabase):
			sc, err = host.SignSSHAgent(key, hostID, ca.SystemRoleDatabase, s.cfg.HostCertTTL)
		default:
			return nil, apiError(authclient.CodeBadRequest, "only proxies and database agents get SSH certificates")
		}
		if err != nil {
			return nil, err
		}
		out.SSHCert = string(ssh.MarshalAuthorizedKey(sc))
	}
	s.emitCert(ctx, c, audit.CertTypeHost, cert)
	return out, nil
}

func hasRole(roles []string, role string) bool {
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

func clampTTL(ttl, def, max time.Duration) time.Duration {
	if ttl <= 0 {
		return def
	}
	return min(ttl, max)
}
