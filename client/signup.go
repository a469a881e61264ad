package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// totpIssuer names the cluster's entries in authenticator apps.
const totpIssuer = "Portcullis"

// SignupRequest is what [Signup] needs.
type SignupRequest struct {
	// ProxyAddr is the proxy's host:port. Required.
	ProxyAddr string
	// Token is the one-time sign-up token from `pctl users add`. Required.
	Token string
	// Password is the new password. Required.
	Password string
	// CAPin and Insecure verify the proxy as for [Login].
	CAPin    string
	Insecure bool
	// EnrollTOTP, when set, enrolls an authenticator app: Signup makes a
	// new TOTP secret, calls EnrollTOTP with its otpauth:// URL (which
	// holds the secret: show it only to the user) and sends the secret
	// with the code EnrollTOTP returns, which proves the app holds it.
	EnrollTOTP func(ctx context.Context, otpauthURL string) (code string, err error)
}

// Signup sets a new user's password with a sign-up token and returns the
// user's name. When the proxy was verified (not Insecure), the cluster's
// host CAs are stored for the proxy, so the first login needs no pin.
func Signup(ctx context.Context, req SignupRequest, opts ...Option) (string, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return "", err
	}
	if err := checkProxyAddr(req.ProxyAddr); err != nil {
		return "", err
	}
	if req.Token == "" {
		return "", errors.New("a sign-up token is required (--token); an administrator makes one with pctl users add")
	}
	if req.Password == "" {
		return "", errors.New("a password is required")
	}
	tr, err := resolveTrust(cfg.home, req.ProxyAddr, req.CAPin, req.Insecure)
	if err != nil {
		return "", err
	}
	log := cfg.logger.With("proxy", req.ProxyAddr)
	log.DebugContext(ctx, "signing up", "verify_with", tr.how)
	ac, err := authclient.New(req.ProxyAddr, authclient.WithTLSConfig(tr.tls))
	if err != nil {
		return "", err
	}
	defer ac.Close()

	wire := authclient.SignupRequest{Token: req.Token, Password: req.Password}
	if req.EnrollTOTP != nil {
		ping, err := ac.Ping(ctx)
		if err != nil {
			return "", callError(err, req.ProxyAddr)
		}
		key, err := totp.Generate(totp.GenerateOpts{
			Issuer:      totpIssuer,
			AccountName: ping.ClusterName,
			Period:      30,
			Digits:      otp.DigitsSix,
			Algorithm:   otp.AlgorithmSHA1,
		})
		if err != nil {
			return "", fmt.Errorf("making the authenticator secret: %w", err)
		}
		code, err := req.EnrollTOTP(ctx, key.URL())
		if err != nil {
			return "", err
		}
		wire.TOTPSecret, wire.TOTPCode = key.Secret(), code
	}
	resp, err := ac.Signup(ctx, wire)
	if err != nil {
		return "", callError(err, req.ProxyAddr)
	}
	if tr.verified {
		if err := storeHostCAs(ctx, ac, cfg.home, req.ProxyAddr); err != nil {
			return resp.Username, fmt.Errorf("signed up as %s, but storing the cluster's CA failed (%w); log in with --ca-pin", resp.Username, err)
		}
	}
	log.InfoContext(ctx, "signed up", "user", resp.Username)
	return resp.Username, nil
}

// storeHostCAs fetches the host CAs over a verified connection and stores
// them for the proxy.
func storeHostCAs(ctx context.Context, ac *authclient.Client, home, proxyAddr string) error {
	resp, err := ac.GetCA(ctx, string(ca.HostCA))
	if err != nil {
		return err
	}
	certs, err := parseCertList(resp.Certs)
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return errors.New("the cluster sent no host CA")
	}
	dir := proxyDir(home, proxyAddr)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return err
	}
	return ca.WriteFileAtomic(filepath.Join(dir, hostCAsFile), encodeCerts(certs), filePerm)
}
