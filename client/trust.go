package client

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

// trust is how the first calls to a proxy verify it.
type trust struct {
	tls *tls.Config
	// pin is the CA pin used, if the proxy was checked against one.
	pin string
	// verified is false for insecure: nothing learnt over such a
	// connection is stored by Signup.
	verified bool
	how      string // for logs
}

// resolveTrust picks the verification for calls to proxyAddr: an explicit
// pin, an explicit insecure, the stored host CAs of that proxy, or the pin
// remembered in profile.json, in that order.
func resolveTrust(home, proxyAddr, pin string, insecure bool) (*trust, error) {
	if pin != "" && insecure {
		return nil, errors.New("pass either --ca-pin or --insecure, not both")
	}
	if pin != "" {
		return pinnedTrust(proxyAddr, pin, "the CA pin given")
	}
	if insecure {
		return &trust{tls: authclient.InsecureTLSConfig(), how: "no verification (insecure)"}, nil
	}
	hostCAs, err := readHostCAs(home, proxyAddr)
	switch {
	case err == nil:
		return &trust{tls: authclient.TLSConfig(nil, hostCAs), verified: true,
			how: "the host CAs in " + filepath.Join(proxyDir(home, proxyAddr), hostCAsFile)}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if p, err := LoadProfile(home); err == nil && p.ProxyAddr == proxyAddr && p.CAPin != "" {
		return pinnedTrust(proxyAddr, p.CAPin, "the CA pin remembered in the profile")
	}
	return nil, fmt.Errorf("the cluster's CA is not known for the proxy at %s yet; pass --ca-pin sha256:... "+
		"(the host CA pin that `pctl status` prints on the Auth host), or --insecure on a test cluster", proxyAddr)
}

func pinnedTrust(proxyAddr, pin, how string) (*trust, error) {
	pin, err := normalizePin(pin)
	if err != nil {
		return nil, err
	}
	cfg, err := authclient.PinnedTLSConfig(pin)
	if err != nil {
		return nil, fmt.Errorf("the CA pin %q is not valid: %w", pin, err)
	}
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verify(cs); err != nil {
			return &UntrustedProxyError{ProxyAddr: proxyAddr, Pinned: true, Err: err}
		}
		return nil
	}
	return &trust{tls: cfg, pin: pin, verified: true, how: how}, nil
}

// callError makes the error of a call to the proxy one sentence: the
// [*UntrustedProxyError] inside err, or one made from a failed verification
// against the stored host CAs (which crypto/tls reports as a
// *tls.CertificateVerificationError), or a network failure naming the
// proxy. Refusals from the cluster pass through.
func callError(err error, proxyAddr string) error {
	var ue *UntrustedProxyError
	if errors.As(err, &ue) {
		return ue
	}
	var ve *tls.CertificateVerificationError
	if errors.As(err, &ve) {
		return &UntrustedProxyError{ProxyAddr: proxyAddr, Err: ve.Err}
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return fmt.Errorf("cannot reach the proxy at %s (%w); check --proxy and that the proxy is running", proxyAddr, oe)
	}
	return err
}

// normalizePin refuses a pin that is not sha256: and 64 hex digits, and
// lowercases the digits (the form ca.Fingerprint prints).
func normalizePin(pin string) (string, error) {
	hexPart, ok := strings.CutPrefix(pin, "sha256:")
	if ok && len(hexPart) == 64 {
		if _, err := hex.DecodeString(hexPart); err == nil {
			return "sha256:" + strings.ToLower(hexPart), nil
		}
	}
	return "", fmt.Errorf("the CA pin %q is not sha256: followed by 64 hex digits; copy the host CA pin that `pctl status` prints", pin)
}
