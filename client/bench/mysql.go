package bench

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/go-sql-driver/mysql"
)

// MySQLDialer returns a Dialer of MySQL (or MariaDB) connections made with
// go-sql-driver/mysql from cfg (which must not change afterwards) that run
// query with the text protocol, as the mysql client does: no statement
// preparation. The whole result is read (and thrown away), every result
// set included.
//
// Each connection is one of the driver's own (driver.Conn, from
// mysql.NewConnector), without database/sql's pool in between.
func MySQLDialer(cfg *mysql.Config, query string) Dialer {
	connector, cerr := mysql.NewConnector(cfg)
	return func(ctx context.Context) (Conn, error) {
		if cerr != nil {
			return nil, fmt.Errorf("bench: MySQL configuration: %w", cerr)
		}
		dc, err := connector.Connect(ctx)
		if err != nil {
			return nil, err
		}
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			dc.Close()
			return nil, errors.New("bench: the MySQL driver's connections cannot run queries directly")
		}
		return &myConn{conn: dc, q: q, query: query}, nil
	}
}

type myConn struct {
	conn  driver.Conn
	q     driver.QueryerContext
	query string
	dest  []driver.Value // reused across queries
}

func (c *myConn) Do(ctx context.Context) error {
	rows, err := c.q.QueryContext(ctx, c.query, nil)
	if err != nil {
		return err
	}
	for {
		if n := len(rows.Columns()); cap(c.dest) < n {
			c.dest = make([]driver.Value, n)
		}
		dest := c.dest[:len(rows.Columns())]
		for {
			err = rows.Next(dest)
			if err != nil {
				break
			}
		}
		if !errors.Is(err, io.EOF) {
			rows.Close()
			return err
		}
		next, ok := rows.(driver.RowsNextResultSet)
		if !ok || !next.HasNextResultSet() {
			break
		}
		if err := next.NextResultSet(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			rows.Close()
			return err
		}
	}
	return rows.Close()
}

func (c *myConn) Close() error { return c.conn.Close() }
