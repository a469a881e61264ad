package authclient

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/portcullis-db/portcullis/ca"
)

// A join token is a secret that both the joining host and the Auth service
// know (the service as its SHA-256). Before a new host trusts anything it
// asks the service to prove knowledge of the token over the host's own TLS
// connection: the service returns its host CAs with an HMAC, keyed by the
// token's hash, over keying material exported from that connection. A
// machine in the middle terminates a different TLS connection, so it sees
// different keying material and, without the token, cannot forge the MAC.

// TokenID is the public name of a join token: the first 16 hex digits of
// its SHA-256. It matches the IDs `pctl tokens ls` shows.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:8])
}

// JoinTrustMAC computes the proof over ekm and the CA certificates (DER),
// keyed with tokenHash = SHA-256(token).
func JoinTrustMAC(tokenHash, ekm []byte, caDER [][]byte) []byte {
	m := hmac.New(sha256.New, tokenHash)
	m.Write([]byte(JoinTrustLabel))
	m.Write([]byte{0})
	m.Write(ekm)
	for _, der := range caDER {
		m.Write(der)
	}
	return m.Sum(nil)
}

// VerifyJoinTrust checks a join-trust response against the token and the
// caller's exported keying material and returns the host CAs it may now
// trust.
func VerifyJoinTrust(token string, ekm []byte, resp *JoinTrustResponse) ([]*x509.Certificate, error) {
	if len(resp.HostCAs) == 0 {
		return nil, errors.New("the auth service returned no host CA")
	}
	var certs []*x509.Certificate
	var ders [][]byte
	for _, p := range resp.HostCAs {
		c, err := ca.ParseCertPEM([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("the returned host CA does not parse: %w", err)
		}
		certs = append(certs, c)
		ders = append(ders, c.Raw)
	}
	mac, err := base64.StdEncoding.DecodeString(resp.MAC)
	if err != nil {
		return nil, errors.New("the join-trust proof is not base64")
	}
	sum := sha256.Sum256([]byte(token))
	if !hmac.Equal(mac, JoinTrustMAC(sum[:], ekm, ders)) {
		return nil, errors.New("the server could not prove it knows the join token: the token is wrong, or something between this host and the cluster intercepts TLS")
	}
	return certs, nil
}

// TrustForJoin learns the cluster's host CAs from the Auth service (or a
// proxy that forwards its API) at addr, for a host that holds only a join
// token: it trusts them only after the server proved it knows the token
// over this very TLS connection, and only if the server's certificate
// verifies against them. Options such as WithDialContext apply.
func TrustForJoin(ctx context.Context, addr, token string, opts ...Option) ([]*x509.Certificate, error) {
	var (
		mu    sync.Mutex
		ekm   []byte
		chain []*x509.Certificate
		name  string
	)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("authclient: address %q is not host:port: %w", addr, err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: host,
		// Verification is deferred, not skipped: the server's chain is
		// checked below against CAs that the join-trust proof vouches for,
		// and nothing but the token's ID is sent before that.
		InsecureSkipVerify: true,
	}
	onHandshake := func(cs tls.ConnectionState) error {
		k, err := cs.ExportKeyingMaterial(JoinTrustLabel, nil, 32)
		if err != nil {
			return fmt.Errorf("the TLS connection cannot export keying material: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if ekm != nil {
			return errors.New("the join-trust call needed a second connection")
		}
		ekm, chain, name = k, cs.PeerCertificates, cs.ServerName
		return nil
	}
	c, err := New(addr, append(append([]Option(nil), opts...), WithTLSConfig(cfg), withHandshakeHook(onHandshake))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.JoinTrust(ctx, JoinTrustRequest{TokenID: TokenID(token)})
	if err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	cas, err := VerifyJoinTrust(token, ekm, resp)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, errors.New("the server presented no certificate")
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("the server's certificate does not verify against the cluster's host CA: %w", err)
	}
	return cas, nil
}
