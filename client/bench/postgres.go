package bench

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// closeTimeout bounds closing a connection politely (sending the
// protocol's goodbye) before it is closed hard.
const closeTimeout = 5 * time.Second

// PostgresDialer returns a Dialer of PostgreSQL connections made with pgx
// from cfg (which must come from pgx.ParseConfig and must not change
// afterwards) that run query with the simple query protocol, as psql and
// pgbench's default mode do: one round trip, no statement preparation. The
// whole result is read (and thrown away), every result set of a query
// string holding several statements included. A query that starts with
// COPY is run as COPY ... TO STDOUT with its data read and thrown away.
//
// The connection is pgx's lower layer (pgconn): no statement cache or type
// decoding stands between the wire and the measurement.
func PostgresDialer(cfg *pgx.ConnConfig, query string) Dialer {
	copyOut := isCopy(query)
	return func(ctx context.Context) (Conn, error) {
		pc, err := pgconn.ConnectConfig(ctx, &cfg.Config)
		if err != nil {
			return nil, err
		}
		return &pgConn{pc: pc, query: query, copyOut: copyOut}, nil
	}
}

// isCopy reports whether query is a COPY statement.
func isCopy(query string) bool {
	q := strings.TrimSpace(query)
	return len(q) >= 5 && strings.EqualFold(q[:4], "copy") && strings.ContainsAny(q[4:5], " \t\r\n(")
}

type pgConn struct {
	pc      *pgconn.PgConn
	query   string
	copyOut bool
}

func (c *pgConn) Do(ctx context.Context) error {
	if c.copyOut {
		_, err := c.pc.CopyTo(ctx, io.Discard, c.query)
		return err
	}
	mrr := c.pc.Exec(ctx, c.query)
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		for rr.NextRow() {
		}
		if _, err := rr.Close(); err != nil {
			mrr.Close()
			return err
		}
	}
	return mrr.Close()
}

func (c *pgConn) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	return c.pc.Close(ctx)
}
