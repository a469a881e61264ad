package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/proxy"
)

// recordingTransport stands in for the Auth service: it records the
// calls the forwarder makes and answers 200.
type recordingTransport struct {
	mu    sync.Mutex
	calls []*http.Request
	fail  error
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, err := io.Copy(io.Discard, req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
	}
	rt.mu.Lock()
	rt.calls = append(rt.calls, req)
	fail := rt.fail
	rt.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader("{}")),
		Request:    req,
	}, nil
}

func (rt *recordingTransport) last(t *testing.T) *http.Request {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.calls) == 0 {
		t.Fatal("the call was not forwarded")
	}
	c := rt.calls[len(rt.calls)-1]
	rt.calls = nil
	return c
}

func (rt *recordingTransport) count() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.calls)
}

// serveAPI runs h on the default route of a router, as the proxy does,
// and returns the router's address.
func serveAPI(t *testing.T, pki *testPKI, h http.Handler) string {
	t.Helper()
	r := &proxy.Router{GetCertificate: pki.getCertificate}
	l := serveRouter(t, r)
	httpL := r.Handle([]string{"h2", "http/1.1"}, proxy.Route{Default: true, ClientAuth: tls.RequestClientCert})
	srv := &http.Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(httpL) }()
	t.Cleanup(func() { stopHTTP(t, srv, done) })
	return l.Addr().String()
}

// apiClient is an HTTP client of the proxy that records its own address
// and TLS state.
type apiClient struct {
	hc    *http.Client
	base  string
	mu    sync.Mutex
	local string
}

func newAPIClient(t *testing.T, pki *testPKI, addr string, cert *tls.Certificate, h2 bool) *apiClient {
	t.Helper()
	c := &apiClient{base: "https://" + addr}
	tr := &http.Transport{
		TLSClientConfig:   pki.clientConfig(nil, cert),
		ForceAttemptHTTP2: h2,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.mu.Lock()
				c.local = conn.LocalAddr().String()
				c.mu.Unlock()
			}
			return conn, err
		},
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	c.hc = &http.Client{Transport: tr}
	return c
}

func (c *apiClient) do(t *testing.T, method, path string, body io.Reader, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// apiError decodes the error envelope.
func apiError(t *testing.T, body []byte) *authclient.Error {
	t.Helper()
	var env struct {
		Error *authclient.Error `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil {
		t.Fatalf("answer is not an error envelope: %q (%v)", body, err)
	}
	return env.Error
}

func newRecordingForwarder(t *testing.T) (*proxy.APIForwarder, *recordingTransport) {
	t.Helper()
	rt := &recordingTransport{}
	f, err := proxy.NewAPIForwarder(proxy.APIForwarderConfig{AuthAddr: "auth.example:3025", Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	return f, rt
}

func TestAPIForwarderHeaders(t *testing.T) {
	pki := newTestPKI(t)
	fwd, rt := newRecordingForwarder(t)
	addr := serveAPI(t, pki, fwd)
	alice := pki.userCert(t, "alice")
	spoof := http.Header{
		"Portcullis-Forwarded-For":  {"203.0.113.9:4000"},
		"portcullis-forwarded-cert": {"AAAA"},
		"PORTCULLIS-FORWARDED-EKM":  {"AAAA"},
		"Portcullis-Forwarded-Role": {"Admin"},
		"Connection":                {"Portcullis-Forwarded-For, Portcullis-Forwarded-Cert"},
	}

	for _, h2 := range []bool{false, true} {
		c := newAPIClient(t, pki, addr, alice, h2)
		hdr := spoof.Clone()
		if h2 {
			hdr.Del("Connection") // HTTP/2 has no Connection header
		}
		resp, _ := c.do(t, http.MethodGet, "/v1/users?limit=3", nil, hdr)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("h2=%v: status %d", h2, resp.StatusCode)
		}
		out := rt.last(t)
		if got, want := out.URL.String(), "https://auth.example:3025/v1/users?limit=3"; got != want {
			t.Errorf("forwarded to %s, want %s", got, want)
		}
		if out.Host != "" && out.Host != "auth.example:3025" {
			t.Errorf("Host %q", out.Host)
		}
		c.mu.Lock()
		local := c.local
		c.mu.Unlock()
		want := http.Header{
			authclient.HeaderForwardedFor:  {local},
			authclient.HeaderForwardedCert: {base64.StdEncoding.EncodeToString(alice.Leaf.Raw)},
		}
		for k, v := range out.Header {
			if strings.HasPrefix(strings.ToLower(k), "portcullis-forwarded-") {
				if w, ok := want[k]; !ok || len(v) != 1 || v[0] != w[0] {
					t.Errorf("h2=%v: forwarded header %s: %q, want %q", h2, k, v, w)
				}
				delete(want, k)
			}
		}
		for k := range want {
			t.Errorf("h2=%v: header %s was not forwarded", h2, k)
		}
	}

	t.Run("anonymous", func(t *testing.T) {
		c := newAPIClient(t, pki, addr, nil, false)
		c.do(t, http.MethodGet, "/v1/ping", nil, spoof.Clone())
		out := rt.last(t)
		if v := out.Header.Values(authclient.HeaderForwardedCert); len(v) != 0 {
			t.Errorf("an anonymous call forwarded a certificate: %q", v)
		}
		if v := out.Header.Get(authclient.HeaderForwardedFor); v == "" || strings.HasPrefix(v, "203.") {
			t.Errorf("forwarded for %q", v)
		}
	})

	t.Run("join trust carries the client's keying material", func(t *testing.T) {
		c := newAPIClient(t, pki, addr, nil, false)
		req, _ := http.NewRequest(http.MethodPost, c.base+"/v1/join/trust", strings.NewReader(`{"token_id":"x"}`))
		req.Header.Set(authclient.HeaderForwardedEKM, base64.StdEncoding.EncodeToString(make([]byte, 32)))
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		ekm, err := resp.TLS.ExportKeyingMaterial(authclient.JoinTrustLabel, nil, 32)
		if err != nil {
			t.Fatal(err)
		}
		out := rt.last(t)
		if got, want := out.Header.Get(authclient.HeaderForwardedEKM), base64.StdEncoding.EncodeToString(ekm); got != want {
			t.Errorf("forwarded keying material %q, want the client connection's %q", got, want)
		}
		// Other calls never carry keying material, even if the client sends it.
		c.do(t, http.MethodPost, "/v1/join", strings.NewReader("{}"), http.Header{authclient.HeaderForwardedEKM: {"AAAA"}})
		if v := rt.last(t).Header.Values(authclient.HeaderForwardedEKM); len(v) != 0 {
			t.Errorf("a call other than join trust forwarded keying material %q", v)
		}
	})

	t.Run("paths outside the API", func(t *testing.T) {
		c := newAPIClient(t, pki, addr, nil, false)
		for _, p := range []string{"/", "/v1", "/v2/ping", "/index.html", "/v1/../admin", "/v1/%2e%2e/admin"} {
			resp, body := c.do(t, http.MethodGet, p, nil, nil)
			if resp.StatusCode != http.StatusNotFound || apiError(t, body).Code != authclient.CodeNotFound {
				t.Errorf("%s: status %d, body %s", p, resp.StatusCode, body)
			}
		}
		if n := rt.count(); n != 0 {
			t.Errorf("%d calls outside /v1/ were forwarded", n)
		}
	})

	t.Run("bodies are bounded", func(t *testing.T) {
		c := newAPIClient(t, pki, addr, nil, false)
		big := bytes.Repeat([]byte("x"), proxy.MaxAPIRequestSize+1)
		// Known length: refused before forwarding.
		resp, body := c.do(t, http.MethodPost, "/v1/login", bytes.NewReader(big), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || apiError(t, body).Code != authclient.CodeBadRequest {
			t.Errorf("known length: status %d, body %s", resp.StatusCode, body)
		}
		// Chunked: cut off while forwarding.
		resp, body = c.do(t, http.MethodPost, "/v1/login", io.MultiReader(bytes.NewReader(big)), nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || apiError(t, body).Code != authclient.CodeBadRequest {
			t.Errorf("chunked: status %d, body %s", resp.StatusCode, body)
		}
		rt.mu.Lock()
		rt.calls = nil
		rt.mu.Unlock()
		// At the limit is fine.
		resp, _ = c.do(t, http.MethodPost, "/v1/login", io.MultiReader(bytes.NewReader(big[1:])), nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("a body of exactly MaxAPIRequestSize: status %d", resp.StatusCode)
		}
	})

	t.Run("auth service unreachable", func(t *testing.T) {
		rt.mu.Lock()
		rt.fail = errors.New("dial tcp 10.1.2.3:3025: connect: connection refused")
		rt.mu.Unlock()
		defer func() {
			rt.mu.Lock()
			rt.fail = nil
			rt.mu.Unlock()
		}()
		c := newAPIClient(t, pki, addr, nil, false)
		resp, body := c.do(t, http.MethodGet, "/v1/ping", nil, nil)
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d", resp.StatusCode)
		}
		if e := apiError(t, body); e.Message != "the proxy cannot reach the auth service; try again shortly" {
			t.Errorf("message %q", e.Message)
		}
		if bytes.Contains(body, []byte("10.1.2.3")) {
			t.Errorf("the answer leaks the internal error: %s", body)
		}
	})
}

func TestNewAPIForwarderConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  proxy.APIForwarderConfig
		want string
	}{
		{"no address", proxy.APIForwarderConfig{TLSConfig: &tls.Config{}}, "AuthAddr"},
		{"address without port", proxy.APIForwarderConfig{AuthAddr: "auth", TLSConfig: &tls.Config{}}, "AuthAddr"},
		{"no TLS", proxy.APIForwarderConfig{AuthAddr: "auth:3025"}, "TLSConfig"},
		{"both", proxy.APIForwarderConfig{AuthAddr: "auth:3025", TLSConfig: &tls.Config{}, Transport: &recordingTransport{}}, "Transport"},
	} {
		if _, err := proxy.NewAPIForwarder(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}
