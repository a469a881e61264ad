package auth

import (
	"container/list"
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
	var req authclient.EmitAuditEventsRequest
	if err := decodeAuditBatch(w, r, &req); err != nil {
		return err
	}
	if len(req.Events) > authclient.MaxAuditBatchEvents {
		return apiError(authclient.CodeBadRequest, "a batch holds %d audit events, more than %d; send smaller batches",
			len(req.Events), authclient.MaxAuditBatchEvents)
	}
	events := make([]*audit.RawEvent, len(req.Events))
	for i, raw := range req.Events {
		e, err := parseForwardedEvent(raw)
		if err != nil {
			return apiError(authclient.CodeBadRequest, "audit event %d of the batch: %s", i, strings.TrimPrefix(err.Error(), "audit: "))
		}
		e.ClusterName = s.cluster.name
		e.ForwardedBy = c.id.Username
		events[i] = e
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

// decodeAuditBatch reads the body strictly, bounded by MaxAuditBatchBytes.
func decodeAuditBatch(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, authclient.MaxAuditBatchBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apiError(authclient.CodeBadRequest, "the audit batch is larger than %d bytes; send smaller batches", authclient.MaxAuditBatchBytes)
		}
		return apiError(authclient.CodeBadRequest, "the request body is not valid JSON for this call: %v", err)
	}
	if dec.More() {
		return apiError(authclient.CodeBadRequest, "the request body has data after the JSON object")
	}
	return nil
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
	max   int
	order *list.List // of string, newest at the front
	index map[string]*list.Element
}

func newUIDWindow(max int) *uidWindow {
	return &uidWindow{max: max, order: list.New(), index: make(map[string]*list.Element)}
}

func (u *uidWindow) contains(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.index[id]
	return ok
}

func (u *uidWindow) add(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if el, ok := u.index[id]; ok {
		u.order.MoveToFront(el)
		return
	}
	u.index[id] = u.order.PushFront(id)
	if u.order.Len() > u.max {
		oldest := u.order.Back()
		u.order.Remove(oldest)
		delete(u.index, oldest.Value.(string))
	}
}
