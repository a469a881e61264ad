package auth_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

// Benchmarks of the Auth service's side of the audit path: a database
// agent forwarding batches of statement events. Compare runs with
// benchstat:
//
//	go test -run '^$' -bench . -benchmem -count 5 ./ca/auth > new.txt

// benchCluster starts an Auth service that writes to a SyncBatch FileLog
// (as the daemon's does) and joins a database agent; it returns the
// agent's certificate chain.
func benchCluster(b *testing.B) (*authtest.Cluster, []*x509.Certificate) {
	b.Helper()
	tc := authtest.Start(b, authtest.WithConfig(func(cfg *auth.Config) {
		fl, err := audit.NewFileLog(audit.FileLogConfig{Dir: filepath.Join(b.TempDir(), "audit"), MaxSize: 64 << 20, MaxBackups: 1})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { fl.Close() })
		cfg.Emitter = fl
	}))
	_, resp, _ := tc.Join(b, "db", ca.SystemRoleDatabase, "agent-1")
	chain, err := ca.ParseCertsPEM([]byte(resp.Cert))
	if err != nil {
		b.Fatal(err)
	}
	return tc, chain
}

// BenchmarkAuditIngest is POST /v1/audit/events with a batch of 256
// statement events (the Forwarder's default batch size), through the
// service's handler: identifying the agent, checking and writing each
// event. Each batch has fresh uids, so none is skipped as a duplicate.
func BenchmarkAuditIngest(b *testing.B) {
	tc, chain := benchCluster(b)
	const batchSize = 256
	// The batch, split around each event's uid.
	at := tc.Clock.Now().UTC()
	var parts [][]byte
	prefix := []byte(`{"events":[`)
	for i := range batchSize {
		e := &audit.DatabaseSessionQuery{
			Metadata: audit.Metadata{Type: audit.TypeDatabaseSessionQuery, ID: "UID", Time: at, Code: audit.CodeDatabaseSessionQuery},
			DatabaseSessionMetadata: audit.DatabaseSessionMetadata{
				SessionMetadata:    audit.SessionMetadata{SessionID: "9b1d7c3e-5a4f-4e21-8c6d-2f0e1a3b4c5d"},
				UserMetadata:       audit.UserMetadata{User: "alice", Roles: []string{"access"}},
				DatabaseMetadata:   audit.DatabaseMetadata{DatabaseService: "pg1", DatabaseProtocol: "postgres", DatabaseUser: "alice", DatabaseName: "app"},
				ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
			},
			Query:  "SELECT abalance FROM pgbench_accounts WHERE aid = " + strconv.Itoa(i) + ";",
			Status: audit.Status{Success: true},
		}
		line, err := audit.MarshalEvent(e)
		if err != nil {
			b.Fatal(err)
		}
		before, after, _ := bytes.Cut(line, []byte(`"UID"`))
		if i > 0 {
			before = append([]byte{','}, before...)
		}
		parts = append(parts, append(prefix, before...), after)
		prefix = nil
	}
	tail := []byte(`]}`)
	h := tc.Server.Handler()
	state := &tls.ConnectionState{PeerCertificates: chain}
	var body []byte
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n++
		body = body[:0]
		for i := 0; i < len(parts); i += 2 {
			body = append(body, parts[i]...)
			body = append(body, `"b`...)
			body = strconv.AppendInt(body, int64(n), 10)
			body = append(body, '-')
			body = strconv.AppendInt(body, int64(i/2), 10)
			body = append(body, '"')
			body = append(body, parts[i+1]...)
		}
		body = append(body, tail...)
		req := httptest.NewRequest(http.MethodPost, "/v1/audit/events", bytes.NewReader(body))
		req.TLS = state
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if n == 1 {
			var resp authclient.EmitAuditEventsResponse
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &resp) != nil || resp.Accepted != batchSize {
				b.Fatalf("ingest answered %d: %s", rec.Code, rec.Body)
			}
		}
	}
	b.SetBytes(int64(len(body)))
}

// BenchmarkIdentify identifies a caller by its certificate, as every API
// call does: an agent calling directly, and a user's call forwarded by a
// proxy (two chains: the proxy's and the forwarded one).
func BenchmarkIdentify(b *testing.B) {
	tc, chain := benchCluster(b)
	proxy := tc.ProxyCertificate(b)
	var proxyChain []*x509.Certificate
	for _, der := range proxy.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		proxyChain = append(proxyChain, c)
	}
	var fwd []string
	for _, c := range chain {
		fwd = append(fwd, base64.StdEncoding.EncodeToString(c.Raw))
	}
	for _, bc := range []struct {
		name  string
		chain []*x509.Certificate
		hdr   http.Header
	}{
		{"direct", chain, nil},
		{"forwarded", proxyChain, http.Header{
			authclient.HeaderForwardedFor:  {"203.0.113.7:51234"},
			authclient.HeaderForwardedCert: {strings.Join(fwd, ",")},
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
			req.TLS = &tls.ConnectionState{PeerCertificates: bc.chain}
			for k, v := range bc.hdr {
				req.Header[k] = v
			}
			id, err := auth.Identify(tc.Server, req)
			if err != nil || id.Username != "agent-1" {
				b.Fatalf("identify: %v, %v", id, err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := auth.Identify(tc.Server, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
