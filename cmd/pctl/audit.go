package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/portcullis-db/portcullis/audit"
	"github.com/portcullis-db/portcullis/ca/authclient"
)

// maxSummary is the longest summary (in runes) the text output shows; the
// JSON output has everything.
const maxSummary = 200

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Search the cluster's audit log"}
	cmd.AddCommand(a.auditSearchCmd())
	return cmd
}

func (a *app) auditSearchCmd() *cobra.Command {
	var (
		q                     authclient.AuditQuery
		since, from, to, form string
	)
	cmd := &cobra.Command{
		Use:   "search [--user U] [--db NAME] [--type T] [--since DURATION | --from TIME] [--to TIME] [--limit N] [--format text|json]",
		Short: "Show audit events, newest last",
		Long: "Show the newest audit events that match every filter given, oldest first: logins, certificates,\n" +
			"changes to users, roles, locks and tokens, and database sessions with their statements.\n" +
			"It needs the auditor role (or the admin identity on the Auth host).\n\n" +
			"--type takes event types such as db.session.query, several separated by commas or by\n" +
			"repeating the flag; db.session.* matches every database-session event. --since takes a\n" +
			"duration such as 90m, 24h or 7d; --from and --to take RFC 3339 times\n" +
			"(2026-11-23T20:00:00Z) or dates (2026-11-23, midnight UTC).",
		Args: argNames(),
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(form, "text", "json"); err != nil {
			return err
		}
		if err := parseAuditTimes(&q, since, from, to); err != nil {
			return err
		}
		if q.Limit < 1 || q.Limit > authclient.MaxAuditSearchLimit {
			return fmt.Errorf("--limit %d is not from 1 to %d", q.Limit, authclient.MaxAuditSearchLimit)
		}
		return a.withClient(func(ctx context.Context, c *authclient.Client, _ *conn) error {
			events, err := c.SearchAuditEvents(ctx, q)
			if err != nil {
				return err
			}
			if form == "json" {
				if events == nil {
					events = []json.RawMessage{}
				}
				return writeJSON(a.stdout, events)
			}
			if len(events) == 0 {
				fmt.Fprintln(a.stdout, "No audit events match.")
				return nil
			}
			rows := make([][]string, 0, len(events))
			for _, raw := range events {
				f, err := decodeAuditFields(raw)
				if err != nil {
					return err
				}
				rows = append(rows, auditRow(f))
			}
			if err := table(a.stdout, []string{"TIME", "TYPE", "USER", "DB", "SUMMARY"}, rows); err != nil {
				return err
			}
			if len(events) == q.Limit {
				fmt.Fprintf(a.stderr, "Showing the newest %d events; narrow the search or raise --limit to see older ones.\n", q.Limit)
			}
			return nil
		})(cmd, args)
	}
	f := cmd.Flags()
	f.StringVar(&q.User, "user", "", "only events of this user")
	f.StringVar(&q.DB, "db", "", "only events of this database service")
	f.StringSliceVar(&q.Types, "type", nil, "only events of these types, e.g. db.session.query or db.session.*")
	f.StringVar(&since, "since", "", "only events from this long ago on, e.g. 90m, 24h, 7d")
	f.StringVar(&from, "from", "", "only events at or after this time (RFC 3339 or a date)")
	f.StringVar(&to, "to", "", "only events before this time (RFC 3339 or a date)")
	f.IntVar(&q.Limit, "limit", authclient.DefaultAuditSearchLimit, "show at most this many of the newest events")
	f.StringVar(&form, "format", "text", "output format: text or json")
	return cmd
}

// parseAuditTimes reads --since, --from and --to into q.
func parseAuditTimes(q *authclient.AuditQuery, since, from, to string) error {
	if since != "" && from != "" {
		return fmt.Errorf("--since and --from both set where the search starts; use one")
	}
	if since != "" {
		d, err := parseSince(since)
		if err != nil {
			return err
		}
		q.Since = d
	}
	var err error
	if q.From, err = parseAuditTime("--from", from); err != nil {
		return err
	}
	if q.To, err = parseAuditTime("--to", to); err != nil {
		return err
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return fmt.Errorf("--to %s is not after --from %s", to, from)
	}
	return nil
}

// parseSince reads a duration such as "90m", "24h" or "7d".
func parseSince(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		if n > 100*365 {
			err = fmt.Errorf("too long")
		}
		d = time.Duration(n) * 24 * time.Hour
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--since %q is not a duration such as 90m, 24h or 7d", s)
	}
	return d, nil
}

func parseAuditTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q is not a time such as 2026-11-23T20:00:00Z or a date such as 2026-11-23", flag, s)
}

func decodeAuditFields(raw json.RawMessage) (audit.Fields, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var f audit.Fields
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("the auth service sent an audit event that does not decode: %w", err)
	}
	return f, nil
}

// auditRow is one line of the text output.
func auditRow(f audit.Fields) []string {
	ts := "-"
	if t := f.Time(); !t.IsZero() {
		ts = t.UTC().Format("2006-01-02T15:04:05Z")
	}
	user := f.User()
	if user == "" {
		user = f.GetString("host_id")
	}
	return []string{ts, orDash(clean(f.Type(), 60)), orDash(clean(user, 60)), orDash(clean(f.GetString("db_service"), 60)),
		orDash(clean(auditSummary(f), maxSummary))}
}

// auditSummary says in a few words what an event records.
func auditSummary(f audit.Fields) string {
	get := f.GetString
	failed := f["success"] == false
	withOutcome := func(s string) string {
		if failed {
			if e := get("error"); e != "" {
				return s + " (failed: " + e + ")"
			}
			return s + " (failed)"
		}
		return s
	}
	switch typ := f.Type(); typ {
	case audit.TypeUserLogin:
		if failed {
			return "login failed from " + orDash(get("client_addr")) + ": " + get("error")
		}
		return "login (" + get("method") + ") from " + orDash(get("client_addr"))
	case audit.TypeCertCreate:
		who := ""
		if id, ok := f["identity"].(map[string]any); ok {
			who, _ = id["username"].(string)
		}
		return get("cert_type") + " certificate for " + who
	case audit.TypeAgentJoin:
		return withOutcome(get("host_id") + " joined as " + get("system_role"))
	case audit.TypeAccessDenied:
		return get("action") + " denied: " + get("reason")
	case audit.TypeDatabaseSessionStart:
		if failed {
			return "session refused: " + get("error")
		}
		return "session started as " + get("db_user") + "@" + get("db_name") + " from " + orDash(get("client_addr"))
	case audit.TypeDatabaseSessionEnd:
		s := "session ended after " + durationField(f, "duration") +
			", " + numberField(f, "bytes_in") + " bytes in, " + numberField(f, "bytes_out") + " bytes out"
		if r := get("reason"); r != "" {
			s += ": " + r
		}
		return s
	case audit.TypePostgresParse:
		return withOutcome("parse " + orDash(get("statement_name")) + ": " + get("query"))
	case audit.TypePostgresBind:
		n := 0
		if ps, ok := f["parameters"].([]any); ok {
			n = len(ps)
		}
		return withOutcome(fmt.Sprintf("bind %s to %s (%d parameters) %s", orDash(get("statement_name")), orDash(get("portal_name")), n, get("query")))
	case audit.TypePostgresExecute:
		return withOutcome("execute " + orDash(get("portal_name")) + ": " + get("query"))
	case audit.TypePostgresClose:
		return "close " + get("object") + " " + orDash(get("statement_name")+get("portal_name"))
	case audit.TypePostgresFunction:
		return withOutcome("function call, oid " + numberField(f, "function_oid"))
	default:
		if kind := get("resource_kind"); kind != "" {
			return strings.TrimPrefix(typ, kind+".") + " " + kind + " " + get("resource_name")
		}
		if q := get("query"); q != "" {
			return withOutcome(q)
		}
		if e := get("error"); e != "" {
			return e
		}
		return ""
	}
}

func numberField(f audit.Fields, key string) string {
	if n, ok := f[key].(json.Number); ok {
		return n.String()
	}
	return "?"
}

func durationField(f audit.Fields, key string) string {
	if n, ok := f[key].(json.Number); ok {
		if ns, err := n.Int64(); err == nil {
			return time.Duration(ns).Round(time.Millisecond).String()
		}
	}
	return "?"
}

// clean makes s safe for one line of a terminal: whitespace runs become
// one space, other control characters (which could be terminal escapes in
// a statement) become "?", and it is cut at max runes.
func clean(s string, max int) string {
	var b strings.Builder
	space, n := false, 0
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			r = '?'
		}
		if n >= max {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
