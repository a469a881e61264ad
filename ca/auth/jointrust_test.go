package auth_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

func TestJoinTrustWithoutPin(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	tok, err := tc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	cas, err := authclient.TrustForJoin(ctx, tc.Addr, tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if len(cas) != 1 || !cas[0].Equal(tc.Server.Authority(ca.HostCA).Cert) {
		t.Fatalf("trusted %d CAs, not the cluster's host CA", len(cas))
	}
	// With the CA learnt, the join runs over a verified connection.
	pub, _ := authtest.KeyPair(t)
	c := tc.Client(t, authclient.TLSConfig(nil, cas))
	if _, err := c.Join(ctx, authclient.JoinRequest{Token: tok.Secret, Role: ca.SystemRoleDatabase, PublicKey: pub}); err != nil {
		t.Fatal(err)
	}

	// A wrong token gets no proof.
	if _, err := authclient.TrustForJoin(ctx, tc.Addr, "0123456789abcdef0123456789abcdef"); !authclient.IsUnauthenticated(err) {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestJoinTrustProofIsBoundToTheConnection(t *testing.T) {
	tc := authtest.Start(t)
	ctx := context.Background()
	tok, err := tc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"})
	if err != nil {
		t.Fatal(err)
	}
	// A proof obtained on one connection does not verify with another
	// connection's keying material, as a machine in the middle would have.
	resp, err := tc.Anon(t).JoinTrust(ctx, authclient.JoinTrustRequest{TokenID: authclient.TokenID(tok.Secret)})
	if err != nil {
		t.Fatal(err)
	}
	otherEKM := make([]byte, 32)
	if _, err := authclient.VerifyJoinTrust(tok.Secret, otherEKM, resp); err == nil {
		t.Fatal("a proof verified against keying material of another connection")
	}
	// Forwarded keying material is believed only from proxies.
	body := `{"token_id":"` + authclient.TokenID(tok.Secret) + `"}`
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: authclient.TLSConfig(nil, []*x509.Certificate{tc.Server.Authority(ca.HostCA).Cert})}}
	defer hc.CloseIdleConnections()
	for _, hdr := range []map[string]string{
		{authclient.HeaderForwardedEKM: base64.StdEncoding.EncodeToString(otherEKM)},
		{authclient.HeaderForwardedEKM: base64.StdEncoding.EncodeToString(otherEKM), authclient.HeaderForwardedFor: "10.0.0.1:5000"},
	} {
		req, _ := http.NewRequest(http.MethodPost, "https://"+tc.Addr+"/v1/join/trust", strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("forwarded keying material from a non-proxy was accepted (headers %v)", hdr)
		}
	}
}
