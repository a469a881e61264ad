package bench_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/portcullis-db/portcullis/client/bench"
)

// Measure SELECT 1 on a PostgreSQL server directly and through a proxy,
// with 8 workers for 10 seconds each, and print them side by side.
func ExampleRun() {
	ctx := context.Background()
	cfg := bench.Config{Concurrency: 8, Duration: 10 * time.Second}
	report := &bench.Report{Title: "SELECT 1, 8 workers"}
	for _, run := range []struct{ name, dsn string }{
		{"direct", "host=127.0.0.1 port=5432 user=alice dbname=app sslmode=verify-full sslrootcert=db-ca.pem sslcert=alice.crt sslkey=alice.key"},
		{"proxied", "postgres://alice@proxy.example:5433/app?sslmode=verify-full&sslrootcert=host-cas.pem&sslcert=route.crt&sslkey=key.pem"},
	} {
		target, err := bench.ParseDSN(run.dsn)
		if err != nil {
			log.Fatal(err)
		}
		res, err := bench.Run(ctx, cfg, target.Dialer("SELECT 1"))
		if err != nil {
			log.Fatalf("%s: %v", run.name, err)
		}
		report.Runs = append(report.Runs, bench.Named{Name: run.name, Result: res})
	}
	if err := report.WriteText(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// sleeper is a connection whose every query takes a millisecond.
type sleeper struct{}

func (sleeper) Do(ctx context.Context) error {
	select {
	case <-time.After(time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (sleeper) Close() error { return nil }

// Any connection can be measured with a Dialer of its own.
func ExampleRun_dialer() {
	dial := func(ctx context.Context) (bench.Conn, error) { return sleeper{}, nil }
	res, err := bench.Run(context.Background(), bench.Config{Concurrency: 2, Duration: 100 * time.Millisecond}, dial)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("errors:", res.Errors)
	fmt.Println("at least 1ms each:", res.Latency.Min() >= time.Millisecond)
	fmt.Println("some measured:", res.Ops > 0 && res.Latency.Count() == res.Ops)
	// Output:
	// errors: 0
	// at least 1ms each: true
	// some measured: true
}

func ExampleHistogram() {
	var h bench.Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	fmt.Println(h.Count(), h.Min(), h.Quantile(0.5), h.Quantile(0.99), h.Max())
	// Output: 1000 1µs 500.735µs 989.183µs 1ms
}
