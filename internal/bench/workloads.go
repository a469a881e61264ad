package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	clientbench "github.com/portcullis-db/portcullis/client/bench"
)

// Aims from the table.
var (
	aimPgbenchC1  = Aim{MinRatio: 0.77}
	aimPgbenchC8  = Aim{MinRatio: 0.60}
	aimPgbenchC64 = Aim{MinRatio: 0.70}
	aimConnect    = Aim{MinRatio: 0.60}
	aimLatency    = Aim{MaxAdded: 50}
	aimCopy       = Aim{MinRatio: 0.90}
	aimIdleMemory = Aim{MaxValue: 64}
)

// Tables the suite creates.
const (
	copyTable  = "copydata" // PostgreSQL, COPY ... TO STDOUT
	kvTable    = "kv"       // MariaDB, point selects
	bigTable   = "big"      // MariaDB, a large result
	kvRows     = 1000
	pointQuery = "SELECT v FROM kv WHERE id = 500"
	// rowPayload is the text column of the large tables: 224 characters.
	pgPayload = "repeat(md5(g::text), 7)"
	myPayload = "REPEAT(MD5(seq), 7)"
	rowBytes  = 232 // about what a row of them takes on the wire
)

// runner runs the workloads of one suite run on a cluster.
type runner struct {
	c       *cluster
	cfg     *Config
	pgbench string // the pgbench binary
	rounds  int
	warmups int
	prof    *profiler // nil unless Config.ProfileDir
}

// interleave runs m and logs each round.
//
// When profiling, the daemons are profiled for one round's duration from
// the start of the first measured Portcullis round. A workload whose
// rounds are shorter than that (a COPY of a fixed size) goes on with its
// next rounds meanwhile, so the profile gathers samples from the later
// Portcullis rounds too (direct rounds add nothing to the daemons'
// profiles).
func (r *runner) interleave(ctx context.Context, name string, m Measure) (*Samples, error) {
	r.c.logf("%s: %d rounds per side, interleaved", name, r.rounds)
	var wait func() error
	defer func() {
		if wait == nil {
			return
		}
		if err := wait(); err != nil {
			r.c.cfg.log.Warn(err.Error())
		}
	}()
	busy := make(map[string][]float64)
	daemons := []string{"auth", "proxy", "agent"}
	cpuMissed := false
	s, err := Interleave(ctx, r.rounds, r.warmups, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		if r.prof != nil && side == Portcullis && !warmup && wait == nil {
			wait = r.prof.start(ctx, name, r.cfg.duration())
		}
		var before map[string]time.Duration
		start := time.Now()
		if side == Portcullis && !warmup {
			before = r.c.cpuTimes()
		}
		vals, err := m(ctx, side, warmup)
		if err == nil && before != nil {
			wall := time.Since(start)
			after := r.c.cpuTimes()
			if len(before) != len(daemons) || len(after) != len(daemons) || wall <= 0 {
				cpuMissed = true // a round without all three: no CPU figures
			}
			for daemon, a := range after {
				busy[daemon] = append(busy[daemon], (a-before[daemon]).Seconds()/wall.Seconds())
			}
		}
		if err == nil && !warmup {
			r.c.cfg.log.Debug(fmt.Sprintf("%s %s: %v", name, side, vals))
		}
		return vals, err
	})
	if s != nil && !cpuMissed && len(busy) == len(daemons) {
		s.Busy = busy
	}
	return s, err
}

// result makes the row of a one-figure workload.
func result(id, name, unit string, s *Samples, aim Aim) Result {
	d, p := s.Median(0)
	res := NewResult(id, name, unit, d, p, aim, false, false)
	res.DirectRounds, res.PortcullisRounds = s.Direct[0], s.Portcullis[0]
	res.CPU = NewCPUCost(unit, s.Busy, s.Portcullis[0])
	return res
}

// preparePostgres fills the benchmark database: pgbench's tables and the
// table the COPY reads.
func (r *runner) preparePostgres(ctx context.Context) error {
	r.c.logf("pgbench -i -s %d", r.cfg.scale())
	if _, err := runTool(ctx, r.pgbench, r.c.pgEnv(Direct), "-i", "-q", "-s", fmt.Sprint(r.cfg.scale())); err != nil {
		return err
	}
	rows := r.cfg.copyBytes() / rowBytes
	return r.c.pgAdmin(ctx,
		fmt.Sprintf("CREATE TABLE %s AS SELECT g AS id, %s AS payload FROM generate_series(1, %d) g", copyTable, pgPayload, rows),
		fmt.Sprintf("GRANT SELECT ON %s TO %s", copyTable, benchUser),
		"VACUUM ANALYZE "+copyTable)
}

// pgbenchWorkload measures pgbench -S TPS at c clients (with -C, a new
// connection for each transaction).
func (r *runner) pgbenchWorkload(ctx context.Context, clients int, connect bool) Result {
	id, name, aim := fmt.Sprintf("pgbench_select_c%d", clients), fmt.Sprintf("pgbench -S, c=%d", clients), aimPgbenchC1
	switch {
	case connect:
		id, name, aim = "pgbench_select_connect", fmt.Sprintf("pgbench -S -C (connections), c=%d", clients), aimConnect
	case clients >= 64:
		aim = aimPgbenchC64
	case clients > 1:
		aim = aimPgbenchC8
	}
	s, err := r.interleave(ctx, name, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		run := PgbenchRun{Clients: clients, Duration: r.cfg.duration(), Connect: connect}
		if warmup {
			run.Duration = r.cfg.warmup()
		}
		res, err := Pgbench(ctx, r.pgbench, r.c.pgEnv(side), run)
		if err != nil {
			return nil, err
		}
		return []float64{res.TPS}, nil
	})
	if err != nil {
		return Failed(id, name, "TPS", aim, err)
	}
	return result(id, name, "TPS", s, aim)
}

// latencyWorkload measures SELECT 1 at c=1 with the Go client: p50 and
// mean, and the added microseconds per query.
func (r *runner) latencyWorkload(ctx context.Context) []Result {
	const name = "SELECT 1 latency, c=1"
	s, err := r.interleave(ctx, name, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		pg, _, err := r.c.targets(side)
		if err != nil {
			return nil, err
		}
		cfg := clientbench.Config{Concurrency: 1, Duration: r.cfg.duration()}
		if warmup {
			cfg.Duration = r.cfg.warmup()
		}
		res, err := clientbench.Run(ctx, cfg, pg.Dialer("SELECT 1"))
		if err != nil {
			return nil, err
		}
		if res.Errors > 0 {
			return nil, fmt.Errorf("%d queries failed, the first: %v", res.Errors, res.FirstError)
		}
		return []float64{micros(res.Latency.Quantile(0.5)), micros(res.Latency.Mean()), micros(res.Latency.Quantile(0.99))}, nil
	})
	if err != nil {
		return []Result{Failed("select1_latency_p50", name+", p50", "µs", aimLatency, err)}
	}
	var out []Result
	for i, q := range []struct{ id, label string }{{"select1_latency_p50", "p50"}, {"select1_latency_mean", "mean"}, {"select1_latency_p99", "p99"}} {
		d, p := s.Median(i)
		aim := aimLatency
		if i == 2 {
			aim = Aim{}
		}
		res := NewResult(q.id, name+", "+q.label, "µs", d, p, aim, true, true)
		res.DirectRounds, res.PortcullisRounds = s.Direct[i], s.Portcullis[i]
		out = append(out, res)
	}
	return out
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// countWriter counts what is written to it and throws it away.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// copyWorkload measures COPY ... TO STDOUT of the copy table in MiB/s;
// the connection is made before the clock starts.
func (r *runner) copyWorkload(ctx context.Context) Result {
	const id, unit = "copy_out", "MiB/s"
	name := fmt.Sprintf("COPY %d MiB out", r.cfg.copyBytes()>>20)
	var size int64
	s, err := r.interleave(ctx, name, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		pg, _, err := r.c.targets(side)
		if err != nil {
			return nil, err
		}
		conn, err := pgconn.ConnectConfig(ctx, &pg.Postgres.Config)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.Background())
		var w countWriter
		start := time.Now()
		if _, err := conn.CopyTo(ctx, &w, "COPY "+copyTable+" TO STDOUT"); err != nil {
			return nil, err
		}
		elapsed := time.Since(start)
		size = w.n
		return []float64{float64(w.n) / (1 << 20) / elapsed.Seconds()}, nil
	})
	if err != nil {
		return Failed(id, name, unit, aimCopy, err)
	}
	res := result(id, name, unit, s, aimCopy)
	res.Note = fmt.Sprintf("%.1f MiB of COPY data per run", float64(size)/(1<<20))
	return res
}

// prepareMySQL creates the point-select table and the large one.
func (r *runner) prepareMySQL(ctx context.Context) error {
	rows := r.cfg.copyBytes() / rowBytes
	return r.c.myAdmin(ctx,
		fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(64) NOT NULL)", kvTable),
		fmt.Sprintf("INSERT INTO %s SELECT seq, MD5(seq) FROM seq_1_to_%d", kvTable, kvRows),
		fmt.Sprintf("CREATE TABLE %s (id INT PRIMARY KEY, payload VARCHAR(255) NOT NULL)", bigTable),
		fmt.Sprintf("INSERT INTO %s SELECT seq, %s FROM seq_1_to_%d", bigTable, myPayload, rows),
		"ANALYZE TABLE "+kvTable+", "+bigTable)
}

// mysqlPointWorkload measures point selects per second at c connections.
func (r *runner) mysqlPointWorkload(ctx context.Context, clients int) Result {
	id, name, unit := fmt.Sprintf("mysql_point_select_c%d", clients), fmt.Sprintf("MySQL point select, c=%d", clients), "queries/s"
	s, err := r.interleave(ctx, name, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		_, my, err := r.c.targets(side)
		if err != nil {
			return nil, err
		}
		cfg := clientbench.Config{Concurrency: clients, Duration: r.cfg.duration()}
		if warmup {
			cfg.Duration = r.cfg.warmup()
		}
		res, err := clientbench.Run(ctx, cfg, my.Dialer(pointQuery))
		if err != nil {
			return nil, err
		}
		if res.Errors > 0 {
			return nil, fmt.Errorf("%d queries failed, the first: %v", res.Errors, res.FirstError)
		}
		return []float64{res.Throughput(), micros(res.Latency.Quantile(0.5))}, nil
	})
	if err != nil {
		return Failed(id, name, unit, Aim{}, err)
	}
	res := result(id, name, unit, s, Aim{})
	d, p := s.Median(1)
	res.Note = fmt.Sprintf("p50 latency %.1f µs direct, %.1f µs through Portcullis (%+.1f µs)", d, p, p-d)
	return res
}

// mysqlBigWorkload reads the whole large table in MiB/s (the sum of the
// column values' lengths); the connection is made before the clock starts.
func (r *runner) mysqlBigWorkload(ctx context.Context) Result {
	const id, unit = "mysql_big_result", "MiB/s"
	name := fmt.Sprintf("MySQL %d MiB result", r.cfg.copyBytes()>>20)
	var size int64
	s, err := r.interleave(ctx, name, func(ctx context.Context, side Side, warmup bool) ([]float64, error) {
		_, my, err := r.c.targets(side)
		if err != nil {
			return nil, err
		}
		n, elapsed, err := readAll(ctx, my.MySQL, "SELECT id, payload FROM "+bigTable)
		if err != nil {
			return nil, err
		}
		size = n
		return []float64{float64(n) / (1 << 20) / elapsed.Seconds()}, nil
	})
	if err != nil {
		return Failed(id, name, unit, Aim{}, err)
	}
	res := result(id, name, unit, s, Aim{})
	res.Note = fmt.Sprintf("%.1f MiB of column values per run, read with go-sql-driver/mysql", float64(size)/(1<<20))
	return res
}

// readAll runs query on a fresh connection and reads every row, timing
// only the query.
func readAll(ctx context.Context, cfg *mysql.Config, query string) (int64, time.Duration, error) {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return 0, 0, err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if err := conn.PingContext(ctx); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var n int64
	var a, b sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&a, &b); err != nil {
			return 0, 0, err
		}
		n += int64(len(a) + len(b))
	}
	if err := rows.Err(); err != nil {
		return 0, 0, err
	}
	elapsed := time.Since(start)
	if n == 0 {
		return 0, 0, errors.New("the query returned no data")
	}
	return n, elapsed, nil
}
