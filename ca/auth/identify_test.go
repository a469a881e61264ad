package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func errCode(err error) string {
	var ae *authclient.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// Certificates are verified once and then remembered, but never past
// their expiry: a call with a certificate that expired since its last call
// is refused as expired, directly and through a proxy.
func TestIdentifyRefusesACertificateThatExpiredWhileRemembered(t *testing.T) {
	tc := authtest.Start(t)
	key, err := ca.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	user, err := tc.Server.Authority(ca.UserCA).Sign(ca.SignRequest{
		PublicKey: key.Public(),
		Identity:  ca.Identity{Kind: ca.KindUser, Username: "alice", Roles: []string{"access"}},
		TTL:       10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	proxy := tc.ProxyCertificate(t) // valid for an hour
	direct := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
	direct.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{user}}
	forwarded := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
	forwarded.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{proxy.Leaf}}
	forwarded.Header.Set(authclient.HeaderForwardedFor, "203.0.113.7:51234")
	forwarded.Header.Set(authclient.HeaderForwardedCert, base64.StdEncoding.EncodeToString(user.Raw))
	for _, r := range []*http.Request{direct, forwarded, direct, forwarded} {
		if id, err := auth.Identify(tc.Server, r); err != nil || id.Username != "alice" {
			t.Fatalf("identify: %+v, %v", id, err)
		}
	}
	tc.Clock.Set(user.NotAfter.Add(time.Second))
	for _, r := range []*http.Request{direct, forwarded} {
		if _, err := auth.Identify(tc.Server, r); errCode(err) != authclient.CodeCertExpired {
			t.Errorf("identify after expiry: %v, want %s", err, authclient.CodeCertExpired)
		}
	}
	// The proxy's own certificate expires too.
	tc.Clock.Set(proxy.Leaf.NotAfter.Add(time.Second))
	if _, err := auth.Identify(tc.Server, forwarded); !authclient.IsAccessDenied(err) {
		t.Errorf("forwarded by an expired proxy certificate: %v, want access denied", err)
	}
}
