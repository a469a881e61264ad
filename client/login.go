package client

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

// LoginRequest is what [Login] needs.
type LoginRequest struct {
	// ProxyAddr is the proxy's host:port. Required.
	ProxyAddr string
	// Username and Password are the user's credentials. Required.
	Username string
	Password string
	// OTP is the current code of the user's authenticator app, if any.
	OTP string
	// PromptOTP, when set and OTP is empty, is called for a code if the
	// cluster requires a second factor for every login.
	PromptOTP func(ctx context.Context) (string, error)
	// CAPin is the host CA pin (sha256:...) that verifies the proxy on the
	// first login; it is remembered in profile.json.
	CAPin string
	// Insecure skips verifying the proxy: for test clusters only.
	Insecure bool
	// TTL is the certificate lifetime asked for (zero: the cluster's
	// default). Roles may cap it.
	TTL time.Duration
}

// Login logs in and stores the profile: a fresh private key made here, the
// user certificate signed for it, and the cluster's CAs. See the package
// documentation for how the proxy is verified.
func Login(ctx context.Context, req LoginRequest, opts ...Option) (*Profile, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := checkProxyAddr(req.ProxyAddr); err != nil {
		return nil, err
	}
	if req.Username == "" {
		return nil, errors.New("a user name is required (--user)")
	}
	if req.Password == "" {
		return nil, errors.New("a password is required")
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("the certificate lifetime %v is negative", req.TTL)
	}
	tr, err := resolveTrust(cfg.home, req.ProxyAddr, req.CAPin, req.Insecure)
	if err != nil {
		return nil, err
	}
	log := cfg.logger.With("proxy", req.ProxyAddr, "user", req.Username)
	log.DebugContext(ctx, "logging in", "verify_with", tr.how)
	ac, err := authclient.New(req.ProxyAddr, authclient.WithTLSConfig(tr.tls))
	if err != nil {
		return nil, err
	}
	defer ac.Close()

	otp := req.OTP
	if otp == "" && req.PromptOTP != nil {
		ping, err := ac.Ping(ctx)
		if err != nil {
			return nil, callError(err, req.ProxyAddr)
		}
		if ping.SecondFactor == "on" {
			if otp, err = req.PromptOTP(ctx); err != nil {
				return nil, err
			}
		}
	}

	key, err := ca.GenerateKey()
	if err != nil {
		return nil, err
	}
	pub, err := authclient.MarshalPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	resp, err := ac.Login(ctx, authclient.LoginRequest{
		Username:  req.Username,
		Password:  req.Password,
		OTP:       otp,
		PublicKey: pub,
		TTL:       req.TTL,
	})
	if err != nil {
		return nil, callError(err, req.ProxyAddr)
	}
	cert, hostCAs, userCAs, err := checkLoginResponse(resp, key.Public())
	if err != nil {
		return nil, err
	}

	p := &Profile{
		Home:      cfg.home,
		ProxyAddr: req.ProxyAddr,
		Username:  resp.Username,
		Roles:     resp.Roles,
		Traits:    resp.Traits,
		Cluster:   resp.ClusterName,
		Expires:   cert.NotAfter,
		CAPin:     tr.pin,
	}
	if p.CAPin == "" {
		if prev, err := LoadProfile(cfg.home); err == nil && prev.ProxyAddr == req.ProxyAddr {
			p.CAPin = prev.CAPin
		}
	}
	keyPEM, err := ca.MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(p.Dir(), dirPerm); err != nil {
		return nil, fmt.Errorf("creating the profile directory: %w", err)
	}
	// The key goes first: a certificate is never on disk without its key.
	files := []struct {
		path string
		data []byte
	}{
		{p.KeyPath(), keyPEM},
		{p.CertPath(), ca.EncodeCertPEM(cert.Raw)},
		{p.HostCAsPath(), encodeCerts(hostCAs)},
		{p.UserCAsPath(), encodeCerts(userCAs)},
	}
	for _, f := range files {
		if err := ca.WriteFileAtomic(f.path, f.data, filePerm); err != nil {
			return nil, err
		}
	}
	if err := p.save(); err != nil {
		return nil, err
	}
	log.InfoContext(ctx, "logged in", "cluster", p.Cluster, "expires", p.Expires,
		"profile", filepath.Join(cfg.home, profileFile))
	return p, nil
}

// checkLoginResponse parses what the Auth service sent and checks that it
// fits: a user certificate for our key, a user name fit for a file name, and
// the CAs.
func checkLoginResponse(resp *authclient.LoginResponse, pub any) (cert *x509.Certificate, hostCAs, userCAs []*x509.Certificate, err error) {
	bad := func(what string) error {
		return fmt.Errorf("the proxy's login answer is not usable (%s); check that --proxy names a Portcullis proxy", what)
	}
	if err := policy.ValidateName("user", resp.Username); err != nil {
		return nil, nil, nil, bad("bad user name")
	}
	cert, err = ca.ParseCertPEM([]byte(resp.Cert))
	if err != nil {
		return nil, nil, nil, bad("the certificate does not parse")
	}
	if !publicKeysEqual(cert.PublicKey, pub) {
		return nil, nil, nil, bad("the certificate is not for the key sent")
	}
	if hostCAs, err = parseCertList(resp.HostCAs); err != nil || len(hostCAs) == 0 {
		return nil, nil, nil, bad("no host CA")
	}
	if userCAs, err = parseCertList(resp.UserCAs); err != nil || len(userCAs) == 0 {
		return nil, nil, nil, bad("no user CA")
	}
	if !slices.ContainsFunc(userCAs, func(c *x509.Certificate) bool { return cert.CheckSignatureFrom(c) == nil }) {
		return nil, nil, nil, bad("the certificate is not signed by the user CA")
	}
	return cert, hostCAs, userCAs, nil
}

func parseCertList(pems []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range pems {
		certs, err := ca.ParseCertsPEM([]byte(p))
		if err != nil {
			return nil, err
		}
		out = append(out, certs...)
	}
	return out, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, ca.EncodeCertPEM(c.Raw)...)
	}
	return out
}
