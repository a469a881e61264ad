package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/storage"
)

// maxUserCertTTL caps user certificates when no role sets max_session_ttl.
const maxUserCertTTL = 30 * time.Hour

// invalidLogin is the one answer to every failed login: it does not say
// whether the user exists or which factor was wrong.
func invalidLogin() error {
	return apiError(authclient.CodeUnauthenticated, "invalid username, password or one-time code")
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	var req authclient.LoginRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	pub, err := parsePublicKey(req.PublicKey)
	if err != nil {
		return err
	}
	if wait := s.limiter.check(req.Username, c.addr); wait > 0 {
		s.emitLogin(ctx, c, req.Username, nil, "too many failed attempts")
		return apiError(authclient.CodeRateLimited,
			"too many failed logins for this user or from this address; try again in %v", wait.Round(time.Second))
	}
	u, err := s.checkCredentials(ctx, req)
	if err != nil {
		s.limiter.fail(req.Username, c.addr)
		s.emitLogin(ctx, c, req.Username, nil, sentence(err))
		return err
	}
	s.limiter.succeed(req.Username)
	if err := s.checkLocksFor(ctx, u.Name, u.Roles); err != nil {
		s.emitLogin(ctx, c, u.Name, u.Roles, sentence(err))
		return err
	}
	checker, err := s.checkerFor(ctx, &ca.Identity{Username: u.Name, Roles: u.Roles, Traits: u.Traits})
	if err != nil {
		return err
	}
	ttl := req.TTL
	if ttl <= 0 {
		ttl = s.cfg.UserCertTTL
	}
	id := ca.Identity{
		Kind:        ca.KindUser,
		ClusterName: s.cluster.name,
		Username:    u.Name,
		Roles:       u.Roles,
		Traits:      u.Traits,
		LoginIP:     c.addr,
	}
	cert, err := s.cluster.authority(ca.UserCA).Sign(ca.SignRequest{
		PublicKey: pub,
		Identity:  id,
		TTL:       ttl,
		MaxTTL:    checker.MaxSessionTTL(maxUserCertTTL),
	})
	if err != nil {
		return err
	}
	s.emitLogin(ctx, c, u.Name, u.Roles, "")
	s.emitCert(ctx, c, audit.CertTypeUser, cert)
	writeJSON(w, http.StatusOK, authclient.LoginResponse{
		Certs:       s.certsFor(cert, true),
		ClusterName: s.cluster.name,
		Username:    u.Name,
		Roles:       u.Roles,
		Traits:      u.Traits,
	})
	return nil
}

// checkCredentials verifies password and one-time code. Every failure
// returns the same error after the same bcrypt work.
func (s *Server) checkCredentials(ctx context.Context, req authclient.LoginRequest) (*userRecord, error) {
	u, _, err := s.getUser(ctx, req.Username)
	if err != nil && !storage.IsNotFound(err) {
		return nil, err
	}
	hash := s.cluster.dummyHash(s.cfg.BcryptCost)
	if u != nil && len(u.PasswordHash) > 0 {
		hash = u.PasswordHash
	}
	pwErr := bcrypt.CompareHashAndPassword(hash, []byte(req.Password))
	if u == nil || u.Pending || len(u.PasswordHash) == 0 || pwErr != nil {
		return nil, invalidLogin()
	}
	needOTP := u.TOTPSecret != "" || s.cfg.SecondFactor == "on"
	if !needOTP {
		return u, nil
	}
	if u.TOTPSecret == "" {
		// The cluster requires a second factor this user never enrolled.
		return nil, invalidLogin()
	}
	var step int64
	u, err = s.updateUser(ctx, u.Name, func(u *userRecord) error {
		var ok bool
		step, ok = validateTOTP(u.TOTPSecret, req.OTP, s.cfg.Clock(), u.TOTPLastStep)
		if !ok {
			return invalidLogin()
		}
		u.TOTPLastStep = step
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// validateTOTP checks a 6-digit code against the steps around now (one
// step of skew each way) and refuses steps at or before lastStep, so a code
// works once.
func validateTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool) {
	if len(code) != 6 {
		return 0, false
	}
	const period = 30
	for _, skew := range []int64{0, -1, 1} {
		step := now.Unix()/period + skew
		if step <= lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*period, 0), totp.ValidateOpts{
			Period: period, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// certsFor wraps a signed certificate with the CAs its holder needs.
func (s *Server) certsFor(cert *x509.Certificate, withUserCA bool) authclient.Certs {
	out := authclient.Certs{
		Cert:    string(ca.EncodeCertPEM(cert.Raw)),
		HostCAs: certsPEM(s.cluster.certs(ca.HostCA)),
		Expires: cert.NotAfter,
	}
	if withUserCA {
		out.UserCAs = certsPEM(s.cluster.certs(ca.UserCA))
	}
	return out
}

func (s *Server) emitLogin(ctx context.Context, c *caller, user string, roles []string, failure string) {
	s.emit(ctx, &audit.UserLogin{
		Metadata:           audit.Metadata{Type: audit.TypeUserLogin},
		UserMetadata:       audit.UserMetadata{User: user, Roles: roles},
		ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: c.addr},
		Status:             audit.Status{Success: failure == "", Error: failure},
		Method:             audit.LoginMethodPassword,
	})
}

func (s *Server) emitCert(ctx context.Context, c *caller, certType string, cert *x509.Certificate) {
	e := &audit.CertificateCreate{
		Metadata:           audit.Metadata{Type: audit.TypeCertCreate},
		UserMetadata:       audit.UserMetadata{User: c.name(), Roles: callerRoles(c)},
		ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: c.addr},
		CertType:           certType,
		Serial:             cert.SerialNumber.Text(16),
		Expires:            cert.NotAfter,
	}
	if id, err := ca.IdentityFromCertificate(cert); err == nil {
		e.Identity = audit.CertificateIdentity{Username: id.Username, Roles: id.Roles, Traits: id.Traits, LoginIP: id.LoginIP}
		if id.Route != nil {
			e.Identity.Route = &audit.DatabaseMetadata{DatabaseService: id.Route.ServiceName, DatabaseProtocol: id.Route.Protocol,
				DatabaseUser: id.Route.DBUser, DatabaseName: id.Route.DBName}
		}
	} else {
		e.Identity.Username = cert.Subject.CommonName
	}
	e.Identity.Hosts = append(e.Identity.Hosts, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		e.Identity.Hosts = append(e.Identity.Hosts, ip.String())
	}
	if e.User == "" {
		e.User = e.Identity.Username
	}
	s.emit(ctx, e)
}

// parsePublicKey reads a PKIX "PUBLIC KEY" PEM block. Only keys that every
// PostgreSQL and MySQL client and server accepts are taken.
func parsePublicKey(s string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, apiError(authclient.CodeBadRequest, "public_key must be a PEM \"PUBLIC KEY\" block")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, apiError(authclient.CodeBadRequest, "public_key does not parse: %v", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, apiError(authclient.CodeBadRequest, "ECDSA keys must use P-256 or P-384")
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, apiError(authclient.CodeBadRequest, "RSA keys must have at least 2048 bits")
		}
	default:
		return nil, apiError(authclient.CodeBadRequest, "unsupported public key type %T; use ECDSA P-256", pub)
	}
	return pub, nil
}
