package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/ca/authclient"
	"github.com/portcullis-db/portcullis/ca/policy"
)

// AuditSearcher reads the cluster's audit log back for
// GET /v1/audit/events. [*audit.FileLog] implements it.
type AuditSearcher interface {
	Search(ctx context.Context, q audit.Query) (*audit.SearchResult, error)
}

const (
	// auditDedupWindow is how many recent forwarded event IDs the service
	// remembers to drop duplicates (a Forwarder delivers at least once).
	auditDedupWindow = 1 << 16
	// maxAuditResponseBytes bounds a search answer, below what
	// authclient reads.
	maxAuditResponseBytes = 24 << 20
	maxEventTypeLen       = 128
	maxEventIDLen         = 128
)

// auditIngest receives the events agents and proxies forward.
type auditIngest struct {
	s    *Server
	seen *uidWindow
}

func newAuditIngest(s *Server) *auditIngest {
	return &auditIngest{s: s, seen: newUIDWindow(auditDedupWindow)}
}

// handleEmit is POST /v1/audit/events: a batch of events from a database
// agent or proxy (host certificate with system role Db or Proxy). Each
// event is checked (a JSON object with "event", "uid" and an RFC 3339
// "time"), gets this cluster's name and "forwarded_by" (the caller's host
// ID), and is written to the service's audit emitter exactly as received
// otherwise, unknown keys included. Events whose uid was recorded recently
// are skipped, so a batch sent twice is stored once. The batch is checked
// whole before anything is written.
func (in *auditIngest) handleEmit(w http.ResponseWriter, r *http.Request, c *caller) error {
	s := in.s
	if !c.isHost(ca.SystemRoleDatabase) && !c.isHost(ca.SystemRoleProxy) {
		return apiError(authclient.CodeAccessDenied, "only database agents and proxies forward audit events")
	}
	events, err := in.readBatch(w, r, c)
	if err != nil {
		return err
	}
	var resp authclient.EmitAuditEventsResponse
	ctx := context.WithoutCancel(r.Context()) // an event must not be lost because the caller hung up
	for _, e := range events {
		if in.seen.contains(e.ID) {
			resp.Duplicates++
			continue
		}
		if err := s.cfg.Emitter.EmitAuditEvent(ctx, e); err != nil {
			s.log.Error("cannot write forwarded audit events; the sender will retry", zap.String("host", c.id.Username),
				zap.String("event", e.Type), zap.String("uid", e.ID), zap.Error(err))
			return apiError(authclient.CodeInternal, "the auth service cannot write its audit log; the events will be retried")
		}
		// Remembered only once written: a failed write is retried, never
		// dropped as a duplicate.
		in.seen.add(e.ID)
		resp.Accepted++
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// readBatch reads and checks the events of a POST /v1/audit/events,
// and gives each this cluster's name and the forwarder. The batch is
// refused whole (with the first problem) or accepted whole.
//
// A batch is read on a fast path when its JSON has exactly the shape a
// Forwarder sends: {"events":[...]} (any whitespace) and events that all
// pass parseForwardedEvent. Anything else takes the strict path, which
// decodes the body with encoding/json and says what is wrong in its words.
func (in *auditIngest) readBatch(w http.ResponseWriter, r *http.Request, c *caller) ([]*audit.RawEvent, error) {
	body, err := readBody(w, r, authclient.MaxAuditBatchBytes)
	if err != nil {
		return nil, err
	}
	events, err := parseAuditBatch(body, in.s.cluster.name, c.id.Username, true)
	if err == errSlowPath {
		events, err = parseAuditBatch(body, in.s.cluster.name, c.id.Username, false)
	}
	return events, err
}

// errSlowPath sends a batch that the fast path of parseAuditBatch cannot
// take to the strict path. It never reaches a caller of readBatch.
var errSlowPath = errors.New("auth: the audit batch needs the strict path")

// parseAuditBatch splits body into events, quickly if fast is set (or
// errSlowPath), strictly otherwise (see readBatch), and parses them.
func parseAuditBatch(body []byte, clusterName, forwarder string, fast bool) ([]*audit.RawEvent, error) {
	var raws []json.RawMessage
	if fast {
		var ok bool
		if raws, ok = splitAuditBatch(body); !ok || len(raws) > authclient.MaxAuditBatchEvents {
			return nil, errSlowPath
		}
	} else {
		var req authclient.EmitAuditEventsRequest
		if err := decodeStrict(body, &req); err != nil {
			return nil, err
		}
		raws = req.Events
	}
	if len(raws) > authclient.MaxAuditBatchEvents {
		return nil, apiError(authclient.CodeBadRequest, "a batch holds %d audit events, more than %d; send smaller batches",
			len(raws), authclient.MaxAuditBatchEvents)
	}
	events := make([]*audit.RawEvent, len(raws))
	for i, raw := range raws {
		e, err := parseForwardedEvent(raw)
		if err != nil {
			if fast {
				return nil, errSlowPath
			}
			return nil, apiError(authclient.CodeBadRequest, "audit event %d of the batch: %s", i, strings.TrimPrefix(err.Error(), "audit: "))
		}
		e.ClusterName = clusterName
		e.ForwardedBy = forwarder
		events[i] = e
	}
	return events, nil
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, apiError(authclient.CodeBadRequest, "the audit batch is larger than %d bytes; send smaller batches", limit)
		}
		return nil, apiError(authclient.CodeBadRequest, "the request body is not valid JSON for this call: %v", err)
	}
	return buf.Bytes(), nil
}

// decodeStrict decodes body into v as decode does a request body:
// unknown fields and data after the JSON object are refused.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(authclient.CodeBadRequest, "the request body is not valid JSON for this call: %v", err)
	}
	if dec.More() {
		return apiError(authclient.CodeBadRequest, "the request body has data after the JSON object")
	}
	return nil
}

// splitAuditBatch splits {"events":[e1,e2,...]} into the events' JSON
// without checking them (parseForwardedEvent does). ok is false for any
// other shape.
func splitAuditBatch(body []byte) (events []json.RawMessage, ok bool) {
	i := skipJSONSpace(body, 0)
	const head = `{`
	if !bytes.HasPrefix(body[i:], []byte(head)) {
		return nil, false
	}
	i = skipJSONSpace(body, i+len(head))
	const key = `"events"`
	if !bytes.HasPrefix(body[i:], []byte(key)) {
		return nil, false
	}
	i = skipJSONSpace(body, i+len(key))
	if i == len(body) || body[i] != ':' {
		return nil, false
	}
	i = skipJSONSpace(body, i+1)
	if i == len(body) || body[i] != '[' {
		return nil, false
	}
	i = skipJSONSpace(body, i+1)
	events = make([]json.RawMessage, 0, 256)
	if i < len(body) && body[i] == ']' {
		i++
	} else {
		for {
			if i == len(body) || body[i] != '{' {
				return nil, false
			}
			end, ok := skipJSONObject(body, i)
			if !ok {
				return nil, false
			}
			events = append(events, body[i:end:end])
			i = skipJSONSpace(body, end)
			if i == len(body) {
				return nil, false
			}
			c := body[i]
			i = skipJSONSpace(body, i+1)
			if c == ']' {
				break
			}
			if c != ',' {
				return nil, false
			}
		}
	}
	i = skipJSONSpace(body, i)
	if i == len(body) || body[i] != '}' {
		return nil, false
	}
	return events, skipJSONSpace(body, i+1) == len(body)
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONObject returns the end of the object or array that starts at
// b[i]: the index after the bracket that closes it, skipping strings.
func skipJSONObject(b []byte, i int) (end int, ok bool) {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, true
			}
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		}
	}
	return 0, false
}

// parseForwardedEvent checks one forwarded event.
func parseForwardedEvent(raw json.RawMessage) (*audit.RawEvent, error) {
	e, err := audit.ParseRawEvent(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case len(e.Type) > maxEventTypeLen:
		return nil, errors.New(`its "event" type is too long`)
	case e.ID == "":
		return nil, errors.New(`it has no "uid"`)
	case len(e.ID) > maxEventIDLen:
		return nil, errors.New(`its "uid" is too long`)
	case e.Time.IsZero():
		return nil, errors.New(`it has no "time"`)
	}
	return e, nil
}

// handleSearchAudit is GET /v1/audit/events: searching the audit log, for
// users allowed to list audit (the auditor preset) and the admin identity.
// The answer holds the most recently recorded matching events (up to
// limit), sorted by event time, oldest first.
func (s *Server) handleSearchAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	if err := s.authorize(ctx, c, policy.ResourceAudit, policy.VerbList); err != nil {
		return err
	}
	searcher := s.auditSearcher()
	if searcher == nil {
		return apiError(authclient.CodeUnavailable,
			"this auth service keeps no searchable audit log; configure an audit directory (a file log) for it, or search the sink it writes to")
	}
	q, err := s.parseAuditQuery(r)
	if err != nil {
		return err
	}
	res, err := searcher.Search(ctx, q)
	if err != nil {
		return err
	}
	if res.Skipped > 0 {
		s.log.Warn("audit search skipped lines that are not events", zap.Int("skipped", res.Skipped))
	}
	// Forwarded events may be recorded long after they happened (an agent
	// replaying its spool): show them in the order they happened.
	slices.SortStableFunc(res.Events, func(a, b audit.Fields) int { return a.Time().Compare(b.Time()) })
	out := authclient.AuditSearchResponse{Events: make([]json.RawMessage, 0, len(res.Events)), Skipped: res.Skipped}
	size := 0
	for _, f := range res.Events {
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if size += len(b); size > maxAuditResponseBytes {
			return apiError(authclient.CodeBadRequest,
				"the %d matching events are more than one answer may carry (%d MiB); lower the limit or narrow the search",
				len(res.Events), maxAuditResponseBytes>>20)
		}
		out.Events = append(out.Events, b)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// auditSearcher is Config.AuditSearcher, or the audit emitter if it can
// search (a *audit.FileLog), or nil.
func (s *Server) auditSearcher() AuditSearcher {
	if s.cfg.AuditSearcher != nil {
		return s.cfg.AuditSearcher
	}
	if as, ok := s.cfg.Emitter.(AuditSearcher); ok {
		return as
	}
	return nil
}

// parseAuditQuery reads the query string of GET /v1/audit/events.
func (s *Server) parseAuditQuery(r *http.Request) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{User: v.Get("user"), DB: v.Get("db"), Limit: authclient.DefaultAuditSearchLimit, Tail: true}
	for _, t := range v["type"] {
		for _, part := range strings.Split(t, ",") {
			if part = strings.TrimSpace(part); part != "" {
				q.Types = append(q.Types, part)
			}
		}
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > authclient.MaxAuditSearchLimit {
			return q, apiError(authclient.CodeBadRequest, "limit %q is not a number from 1 to %d", l, authclient.MaxAuditSearchLimit)
		}
		q.Limit = n
	}
	since, from := v.Get("since"), v.Get("from")
	if since != "" && from != "" {
		return q, apiError(authclient.CodeBadRequest, "since and from both set the start of the search; use one")
	}
	if since != "" {
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 {
			return q, apiError(authclient.CodeBadRequest, "since %q is not a positive duration such as 90m or 24h", since)
		}
		q.From = s.cfg.Clock().Add(-d)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if val := v.Get(p.name); val != "" {
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return q, apiError(authclient.CodeBadRequest, "%s %q is not an RFC 3339 time such as 2026-11-23T20:00:00Z", p.name, val)
			}
			*p.dst = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, apiError(authclient.CodeBadRequest, "the search ends (to) before it starts (from or since)")
	}
	return q, nil
}

// uidWindow remembers the most recently added IDs, up to a bound.
type uidWindow struct {
	mu    sync.Mutex
	ring  []uidSlot         // the last len(ring) additions; slot seq%len(ring) holds addition seq
	seq   uint64            // additions so far
	index map[string]uint64 // ID -> its latest addition
}

type uidSlot struct {
	id  string
	seq uint64
}

func newUIDWindow(max int) *uidWindow {
	return &uidWindow{ring: make([]uidSlot, max), index: make(map[string]uint64, max)}
}

func (u *uidWindow) contains(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.index[id]
	return ok
}

// add remembers id as the newest, forgetting the oldest beyond the bound.
// Adding an ID again refreshes it.
func (u *uidWindow) add(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seq++
	slot := &u.ring[u.seq%uint64(len(u.ring))]
	if slot.seq != 0 && u.index[slot.id] == slot.seq {
		delete(u.index, slot.id) // its latest addition leaves the window
	}
	*slot = uidSlot{id: id, seq: u.seq}
	u.index[id] = u.seq
}
