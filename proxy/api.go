package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/ca/authclient"
)

// MaxAPIRequestSize bounds the body of an API call the proxy forwards.
const MaxAPIRequestSize = 1 << 20

// maxForwardedCerts is how much of a client's chain is forwarded; the Auth
// service refuses longer chains.
const maxForwardedCerts = 4

// forwardedPrefix starts every header a proxy sets for the Auth service
// (authclient.HeaderForwardedFor, ...Cert, ...Ekm). Clients' headers with
// it are removed, whatever their case.
const forwardedPrefix = "Portcullis-Forwarded-"

// joinTrustPath is the call whose proof is bound to the client's TLS
// connection with the proxy.
const joinTrustPath = "/v1/join/trust"

// unreachableMessage is what a client sees when the Auth service does not
// answer; the cause is in the proxy's log.
const unreachableMessage = "the proxy cannot reach the auth service; try again shortly"

// APIForwarderConfig configures an [APIForwarder].
type APIForwarderConfig struct {
	// AuthAddr is the Auth service's host:port. Required.
	AuthAddr string
	// TLSConfig is the proxy's mutual-TLS client configuration for the
	// Auth service: its host certificate (through GetClientCertificate, so
	// that a renewed certificate is used at once) and RootCAs with the
	// cluster's host CAs. The Auth service believes the forwarded client
	// identity only from a caller with a Proxy host certificate. Required
	// unless Transport is set; the two exclude each other.
	TLSConfig *tls.Config
	// Transport, if set, carries the forwarded calls instead of a transport
	// built from TLSConfig (for an Auth service in the same process, or
	// tests). Requests go to https://AuthAddr; the Transport must present
	// the proxy's host certificate. It is the caller's to close.
	Transport http.RoundTripper
	// Logger receives calls the Auth service could not be reached for.
	// Nil means no logs.
	Logger *zap.Logger
	// Settings, if set, are added to the Auth service's ping answer, so
	// that clients learn where this proxy serves database protocols.
	Settings *authclient.ProxySettings
}

// An APIForwarder is the http.Handler that serves the Auth service's API
// on the proxy: it forwards calls under /v1/ to the Auth service over the
// proxy's own mutual TLS, telling it who the client is. It removes every
// Portcullis-Forwarded-* header a client sends and sets
// authclient.HeaderForwardedFor to the client's address,
// authclient.HeaderForwardedCert to the certificate chain the client
// presented in its TLS handshake with the proxy, and, for the join-trust
// call, authclient.HeaderForwardedEKM to keying material exported from that
// connection. Serve it behind a [Router] route with
// ClientAuth tls.RequestClientCert: the handshake proves the client holds
// its certificate's key and the Auth service verifies the certificate.
//
// Other paths get a not_found error, oversized bodies (over
// MaxAPIRequestSize) a bad_request error, and an unreachable Auth service
// a 502, all in the Auth service's JSON error envelope.
type APIForwarder struct {
	settings *authclient.ProxySettings
	log      *zap.Logger
	target   *url.URL
	rp       *httputil.ReverseProxy
	ownedTr  *http.Transport // nil when the caller supplied Transport
}

// forwarded is what ServeHTTP hands to rewrite and the error handler
// through the request context.
type forwarded struct {
	client string // the client's address, host:port
	cert   string
	ekm    string
	body   *limitedBody
}

type forwardedKey struct{}

// NewAPIForwarder checks cfg and returns a forwarder.
func NewAPIForwarder(cfg APIForwarderConfig) (*APIForwarder, error) {
	if cfg.AuthAddr == "" {
		return nil, errors.New("proxy: APIForwarderConfig.AuthAddr is required: the Auth service's host:port")
	}
	if _, _, err := net.SplitHostPort(cfg.AuthAddr); err != nil {
		return nil, fmt.Errorf("proxy: APIForwarderConfig.AuthAddr %q is not host:port", cfg.AuthAddr)
	}
	if (cfg.TLSConfig == nil) == (cfg.Transport == nil) {
		return nil, errors.New("proxy: set exactly one of APIForwarderConfig.TLSConfig (the proxy's mutual-TLS client config for the Auth service) and APIForwarderConfig.Transport")
	}
	f := &APIForwarder{
		settings: cfg.Settings,
		log:      cfg.Logger,
		target:   &url.URL{Scheme: "https", Host: cfg.AuthAddr},
	}
	if f.log == nil {
		f.log = zap.NewNop()
	}
	f.log = f.log.Named("api")
	tr := cfg.Transport
	if tr == nil {
		f.ownedTr = &http.Transport{
			TLSClientConfig:       cfg.TLSConfig.Clone(),
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			ExpectContinueTimeout: time.Second,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
		}
		tr = f.ownedTr
	}
	f.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		ModifyResponse: f.modifyResponse,
		Transport:      tr,
		ErrorHandler:   f.proxyError,
		ErrorLog:       zap.NewStdLog(f.log.Named("http")),
	}
	return f, nil
}

// maxPingSize bounds the ping answer the forwarder rewrites.
const maxPingSize = 64 << 10

// modifyResponse adds the proxy's settings to a successful ping answer.
func (f *APIForwarder) modifyResponse(resp *http.Response) error {
	if f.settings == nil || resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet ||
		resp.Request.URL.Path != "/v1/ping" {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPingSize))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var ping authclient.PingResponse
	if err := json.Unmarshal(data, &ping); err != nil {
		return fmt.Errorf("proxy: the auth service's ping answer does not parse: %w", err)
	}
	ping.Proxy = f.settings
	out, err := json.Marshal(ping)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// Close releases the idle connections of the transport the forwarder
// built from TLSConfig. The forwarder still works afterwards.
func (f *APIForwarder) Close() error {
	if f.ownedTr != nil {
		f.ownedTr.CloseIdleConnections()
	}
	return nil
}

// ServeHTTP forwards one API call.
func (f *APIForwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(path.Clean("/"+r.URL.Path), "/v1/") {
		writeAPIError(w, http.StatusNotFound, authclient.CodeNotFound,
			fmt.Sprintf("%s %s is not an API call; the API is under /v1/", r.Method, r.URL.Path))
		return
	}
	if r.ContentLength > MaxAPIRequestSize {
		writeTooLarge(w)
		return
	}
	fw := &forwarded{client: r.RemoteAddr}
	if fw.client == "" {
		// Never leave the header out: without it the Auth service would
		// take the call for the proxy's own.
		fw.client = "unknown"
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		chain := r.TLS.PeerCertificates
		if len(chain) > maxForwardedCerts {
			chain = chain[:maxForwardedCerts]
		}
		parts := make([]string, len(chain))
		for i, c := range chain {
			parts[i] = base64.StdEncoding.EncodeToString(c.Raw)
		}
		fw.cert = strings.Join(parts, ",")
	}
	if r.Method == http.MethodPost && r.URL.Path == joinTrustPath {
		if r.TLS == nil {
			writeAPIError(w, http.StatusBadRequest, authclient.CodeBadRequest, "join trust needs TLS to the proxy")
			return
		}
		ekm, err := r.TLS.ExportKeyingMaterial(authclient.JoinTrustLabel, nil, 32)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, authclient.CodeBadRequest,
				"the TLS connection cannot export keying material (TLS 1.3, or 1.2 with extended master secret, is needed)")
			return
		}
		fw.ekm = base64.StdEncoding.EncodeToString(ekm)
	}
	if r.Body != nil && r.Body != http.NoBody {
		fw.body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, MaxAPIRequestSize)}
		r.Body = fw.body
	}
	f.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardedKey{}, fw)))
}

// rewrite builds the call to the Auth service.
func (f *APIForwarder) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(f.target)
	stripForwarded(pr.Out.Header)
	stripForwarded(pr.Out.Trailer)
	fw, _ := pr.In.Context().Value(forwardedKey{}).(*forwarded)
	if fw == nil {
		fw = &forwarded{client: "unknown"}
	}
	pr.Out.Header.Set(authclient.HeaderForwardedFor, fw.client)
	if fw.cert != "" {
		pr.Out.Header.Set(authclient.HeaderForwardedCert, fw.cert)
	}
	if fw.ekm != "" {
		pr.Out.Header.Set(authclient.HeaderForwardedEKM, fw.ekm)
	}
}

// stripForwarded removes every Portcullis-Forwarded-* header, comparing
// names without regard to case.
func stripForwarded(h http.Header) {
	for k := range h {
		if len(k) >= len(forwardedPrefix) && strings.EqualFold(k[:len(forwardedPrefix)], forwardedPrefix) {
			delete(h, k)
		}
	}
}

// proxyError answers a call that could not be forwarded.
func (f *APIForwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	fw, _ := r.Context().Value(forwardedKey{}).(*forwarded)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || (fw != nil && fw.body != nil && fw.body.tooLarge.Load()) {
		writeTooLarge(w)
		return
	}
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer.
		f.log.Debug("client left before the auth service answered", zap.String("path", r.URL.Path), zap.Error(err))
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	f.log.Warn("cannot forward an API call to the auth service",
		zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("auth_addr", f.target.Host), zap.Error(err))
	writeAPIError(w, http.StatusBadGateway, authclient.CodeUnavailable, unreachableMessage)
}

func writeTooLarge(w http.ResponseWriter) {
	writeAPIError(w, http.StatusRequestEntityTooLarge, authclient.CodeBadRequest,
		fmt.Sprintf("the request body is larger than %d MiB", MaxAPIRequestSize>>20))
}

// writeAPIError answers in the Auth service's error envelope.
func writeAPIError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": &authclient.Error{Code: code, Message: msg}})
}

// limitedBody remembers that http.MaxBytesReader cut the body off, however
// the transport reports the failed read.
type limitedBody struct {
	io.ReadCloser
	tooLarge atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		b.tooLarge.Store(true)
	}
	return n, err
}
