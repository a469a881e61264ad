// Package bench is the reproducible benchmark suite behind
// `go run ./internal/bench/cmd/suite`: it starts a real PostgreSQL and
// MariaDB (package dbtest) and a cluster of three processes (Auth, proxy
// and database agent, the agent connected through the reverse tunnel, as
// in production), and measures each workload both directly (TLS with a
// client certificate from the cluster's database CA, straight to the
// database) and through Portcullis.
//
// # Method
//
// Direct and proxied rounds are interleaved, alternating which side goes
// first ([Schedule]), after a warm-up round of each that is not recorded;
// each figure is the median of its side's rounds ([Median]). Ratios are
// portcullis/direct for throughput and latency alike; latency rows also
// show the microseconds added.
//
// # Workloads
//
//   - pgbench -S TPS at c=1, 8 and 64 (-j min(c, 4)), and with -C (a new
//     TLS connection per transaction) at c=8.
//   - SELECT 1 latency at c=1 with client/bench: p50, mean and p99.
//   - COPY of a ~100 MiB table TO STDOUT with pgx, in MiB/s.
//   - MySQL point selects at c=1 and c=8 with client/bench, and a ~100
//     MiB result read with go-sql-driver/mysql, in MiB/s.
//   - Memory per idle session: (RSS of the proxy and the agent with N
//     sessions held open - before) / N, from freshly started processes,
//     for PostgreSQL at 1,000 and MariaDB at 1,000 and 10,000.
//   - Many agents on one proxy: [RunAgents] runs them in a child process
//     (the suite binary's hidden `agents` subcommand); the proxy's memory
//     per agent, and the time until all are connected again after the
//     proxy process restarts.
//
// [Report] writes the results as a text table, JSON or BENCHMARKS.md.
package bench
