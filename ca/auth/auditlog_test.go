package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/auth"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/internal/authtest"
)

// rawEvent builds a forwarded event's JSON.
func rawEvent(t *testing.T, fields map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func searchFields(t *testing.T, c *authclient.Client, q authclient.AuditQuery) []audit.Fields {
	t.Helper()
	raws, err := c.SearchAuditEvents(context.Background(), q)
	if err != nil {
		t.Fatalf("search %+v: %v", q, err)
	}
	out := make([]audit.Fields, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func uids(evs []audit.Fields) string {
	var s []string
	for _, e := range evs {
		s = append(s, e.ID())
	}
	return strings.Join(s, ",")
}

func TestForwardedAuditEventsAreStoredAndSearchable(t *testing.T) {
	tc := authtest.Start(t, authtest.WithAuditLog())
	ctx := context.Background()
	agent, _, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	now := tc.Clock.Now().UTC()
	at := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339Nano) }
	batch := []json.RawMessage{
		rawEvent(t, map[string]any{"event": "db.session.start", "uid": "e1", "time": at(2 * time.Hour), "sid": "s1",
			"user": "alice", "db_service": "pg1", "success": true}),
		rawEvent(t, map[string]any{"event": "db.session.query", "uid": "e2", "time": at(30 * time.Minute), "sid": "s1",
			"user": "alice", "db_service": "pg1", "query": "select 42", "success": true,
			"x_future": map[string]any{"a": []int{1, 2}}, "cluster_name": "forged", "forwarded_by": "forged"}),
		rawEvent(t, map[string]any{"event": "db.session.query", "uid": "e3", "time": at(20 * time.Minute), "sid": "s2",
			"user": "bob", "db_service": "pg2", "query": "select 1", "success": true}),
		rawEvent(t, map[string]any{"event": "db.session.end", "uid": "e4", "time": at(10 * time.Minute), "sid": "s1",
			"user": "alice", "db_service": "pg1", "duration": 1500000000, "bytes_in": 10, "bytes_out": 20}),
	}
	if err := agent.EmitAuditEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The same batch again (a retry after a lost reply) is stored once.
	if err := agent.EmitAuditEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// A proxy may forward too.
	proxy, _, _ := tc.Join(t, "proxy", ca.SystemRoleProxy, "proxy-1")
	if err := proxy.EmitAuditEvents(ctx, []json.RawMessage{rawEvent(t, map[string]any{
		"event": "db.session.start", "uid": "e5", "time": at(5 * time.Minute), "user": "carol", "db_service": "pg1",
		"success": false, "error": "access to db denied"})}); err != nil {
		t.Fatal(err)
	}

	// Users without audit rights may neither search nor forward.
	tc.AddUser(t, "alice", "correct horse", []string{"access"}, nil)
	alice, _, _ := tc.Login(t, "alice", "correct horse")
	if _, err := alice.SearchAuditEvents(ctx, authclient.AuditQuery{}); !authclient.IsAccessDenied(err) {
		t.Fatalf("search by a user without audit rights: %v", err)
	}
	if err := alice.EmitAuditEvents(ctx, batch); !authclient.IsAccessDenied(err) {
		t.Fatalf("forwarding by a user: %v", err)
	}
	if err := tc.Admin().EmitAuditEvents(ctx, batch); !authclient.IsAccessDenied(err) {
		t.Fatalf("forwarding by the admin identity: %v", err)
	}

	tc.AddUser(t, "dora", "correct horse", []string{"auditor"}, nil)
	auditor, _, _ := tc.Login(t, "dora", "correct horse")
	dbTypes := []string{"db.session.*"}
	for _, tt := range []struct {
		q    authclient.AuditQuery
		want string
	}{
		{authclient.AuditQuery{Types: dbTypes}, "e1,e2,e3,e4,e5"},
		{authclient.AuditQuery{Types: dbTypes, User: "alice"}, "e1,e2,e4"},
		{authclient.AuditQuery{DB: "pg2"}, "e3"},
		{authclient.AuditQuery{DB: "pg1", Types: []string{"db.session.query"}}, "e2"},
		{authclient.AuditQuery{Types: []string{"db.session.query", "db.session.end"}}, "e2,e3,e4"},
		{authclient.AuditQuery{Types: dbTypes, Since: time.Hour}, "e2,e3,e4,e5"},
		{authclient.AuditQuery{Types: dbTypes, From: now.Add(-25 * time.Minute), To: now.Add(-10 * time.Minute)}, "e3"},
		{authclient.AuditQuery{Types: dbTypes, Limit: 2}, "e4,e5"}, // the newest, oldest first
		{authclient.AuditQuery{User: "nobody"}, ""},
	} {
		if got := uids(searchFields(t, auditor, tt.q)); got != tt.want {
			t.Errorf("search %+v = %s, want %s", tt.q, got, tt.want)
		}
	}

	// The admin identity searches too, and sees the events as forwarded,
	// unknown keys included, with this cluster's name and the forwarder.
	evs := searchFields(t, tc.Admin(), authclient.AuditQuery{Types: []string{"db.session.query"}, User: "alice"})
	if len(evs) != 1 {
		t.Fatalf("admin search: %v", evs)
	}
	e := evs[0]
	if e.ClusterName() != "test" || e.GetString(audit.KeyForwardedBy) != "agent-1" || e.GetString("query") != "select 42" ||
		e.GetString("sid") != "s1" || fmt.Sprint(e["x_future"]) != "map[a:[1 2]]" {
		t.Errorf("stored event: %v", e)
	}
	if e := searchFields(t, tc.Admin(), authclient.AuditQuery{User: "carol"}); len(e) != 1 || e[0].GetString(audit.KeyForwardedBy) != "proxy-1" {
		t.Errorf("proxy's event: %v", e)
	}
	// The refused search was audited.
	if denied := searchFields(t, tc.Admin(), authclient.AuditQuery{Types: []string{audit.TypeAccessDenied}, User: "alice"}); len(denied) == 0 {
		t.Error("no access.denied event for alice's search")
	}
}

func TestForwardedAuditEventsAreChecked(t *testing.T) {
	tc := authtest.Start(t, authtest.WithAuditLog())
	ctx := context.Background()
	agent, _, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	now := tc.Clock.Now().UTC().Format(time.RFC3339)
	good := `{"event":"db.session.query","uid":"ok","time":"` + now + `"}`
	for _, tt := range []struct {
		events []string
		want   string
	}{
		{[]string{`{"uid":"a","time":"` + now + `"}`}, `no "event" type`},
		{[]string{`{"event":"x","time":"` + now + `"}`}, `no "uid"`},
		{[]string{`{"event":"x","uid":"a"}`}, `no "time"`},
		{[]string{`{"event":"x","uid":"a","time":"noon"}`}, "RFC 3339"},
		{[]string{good, `["not","an","object"]`}, "event 1 of the batch"},
		{[]string{`{"event":"x","uid":"a","time":"` + now + `","user":"a","user":"b"}`}, "twice"},
	} {
		raws := make([]json.RawMessage, len(tt.events))
		for i, e := range tt.events {
			raws[i] = json.RawMessage(e)
		}
		err := agent.EmitAuditEvents(ctx, raws)
		if !authclient.IsAuditBatchRefused(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("batch %v: %v, want a refusal mentioning %q", tt.events, err, tt.want)
		}
	}
	// Nothing of a refused batch is written, even its good events.
	if evs := searchFields(t, tc.Admin(), authclient.AuditQuery{Types: []string{"db.session.query"}}); len(evs) != 0 {
		t.Errorf("stored from refused batches: %v", evs)
	}

	many := make([]json.RawMessage, authclient.MaxAuditBatchEvents+1)
	for i := range many {
		many[i] = json.RawMessage(strings.Replace(good, `"ok"`, fmt.Sprintf(`"m%d"`, i), 1))
	}
	if err := agent.EmitAuditEvents(ctx, many); !authclient.IsAuditBatchRefused(err) || !strings.Contains(err.Error(), "smaller batches") {
		t.Errorf("an oversized batch: %v", err)
	}
	big := `{"event":"x","uid":"big","time":"` + now + `","pad":"` + strings.Repeat("x", authclient.MaxAuditBatchBytes) + `"}`
	if err := agent.EmitAuditEvents(ctx, []json.RawMessage{json.RawMessage(big)}); !authclient.IsAuditBatchRefused(err) ||
		!strings.Contains(err.Error(), "larger than") {
		t.Errorf("a batch over the byte limit: %v", err)
	}
}

func TestAuditSearchQueryErrors(t *testing.T) {
	tc := authtest.Start(t, authtest.WithAuditLog())
	ctx := context.Background()
	for _, q := range []authclient.AuditQuery{
		{Limit: authclient.MaxAuditSearchLimit + 1},
		{Since: time.Hour, From: tc.Clock.Now()},
		{From: tc.Clock.Now(), To: tc.Clock.Now().Add(-time.Hour)},
	} {
		if _, err := tc.Admin().SearchAuditEvents(ctx, q); !authclient.IsAuditBatchRefused(err) {
			t.Errorf("search %+v: %v, want a bad request", q, err)
		}
	}
}

// A FileLog as the Emitter serves searches without AuditSearcher; without
// a searchable log, searching says so.
func TestAuditSearchDefaults(t *testing.T) {
	tc := authtest.Start(t, authtest.WithConfig(func(cfg *auth.Config) {
		fl, err := audit.NewFileLog(audit.FileLogConfig{Dir: filepath.Join(t.TempDir(), "audit")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fl.Close() })
		cfg.Emitter = fl
	}))
	ctx := context.Background()
	if _, err := tc.Admin().CreateToken(ctx, authclient.CreateTokenRequest{Type: "db"}); err != nil {
		t.Fatal(err)
	}
	// The SyncBatch log's buffered event is visible to the search.
	if evs := searchFields(t, tc.Admin(), authclient.AuditQuery{Types: []string{audit.TypeJoinTokenCreate}}); len(evs) != 1 {
		t.Errorf("join_token.create events: %v", evs)
	}

	plain := authtest.Start(t)
	_, err := plain.Admin().SearchAuditEvents(ctx, authclient.AuditQuery{})
	if !authclient.IsUnavailable(err) || !strings.Contains(err.Error(), "no searchable audit log") {
		t.Errorf("search without an audit log: %v", err)
	}
}

// A Forwarder wired to EmitAuditEvents, as an agent wires it, delivers in
// order.
func TestForwarderToAuthService(t *testing.T) {
	tc := authtest.Start(t, authtest.WithAuditLog())
	agent, _, _ := tc.Join(t, "db", ca.SystemRoleDatabase, "agent-1")
	fwd, err := audit.NewForwarder(audit.ForwarderConfig{
		Send:          agent.EmitAuditEvents,
		IsPermanent:   authclient.IsAuditBatchRefused,
		SpoolDir:      filepath.Join(t.TempDir(), "spool"),
		FlushInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		ev, err := audit.ParseRawEvent([]byte(fmt.Sprintf(`{"event":"db.session.query","user":"alice","db_service":"pg1","query":"select %d"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := fwd.EmitAuditEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := fwd.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := fwd.Stats(); st.Delivered != 20 || st.SpoolBytes != 0 {
		t.Fatalf("forwarder stats %+v", st)
	}
	evs := searchFields(t, tc.Admin(), authclient.AuditQuery{Types: []string{"db.session.query"}})
	if len(evs) != 20 {
		t.Fatalf("%d events stored, want 20", len(evs))
	}
	for i, e := range evs {
		if e.GetString("query") != fmt.Sprintf("select %d", i) || e.GetString(audit.KeyForwardedBy) != "agent-1" {
			t.Fatalf("event %d: %v", i, e)
		}
	}
}
