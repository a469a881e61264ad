// Package bench measures a database's latency and throughput as a client
// sees them, directly or through a Portcullis proxy, so that the two can be
// put side by side: it is what `pcl bench` and the project's benchmark
// suite are made of.
//
// # Running
//
// [Run] runs an operation (a query, or with [Config].Connect a new
// connection, a query and its close) over and over from
// [Config].Concurrency workers for [Config].Duration. Each worker has its
// own connection, made by a [Dialer], and its own [Histogram]; they are
// merged when the run ends, so nothing is shared while measuring. Ending
// the context stops the run and keeps what was measured.
//
// [PostgresDialer] (pgx) and [MySQLDialer] (go-sql-driver/mysql) run one
// query string and read its whole result. [ParseDSN] makes a [Target] from
// a connection string, [DatabaseTarget] from a route certificate's
// connection settings ([client.DatabaseConfig]), verifying TLS exactly as
// psql and mysql do.
//
// # Histograms
//
// A [Histogram] counts durations from 1 ns to an hour in log-linear buckets
// (128 per power of two, as in HdrHistogram): quantiles are within 0.4% of
// the exact ones, and Record is a few instructions that allocate nothing.
//
// # Reports
//
// A [Report] prints runs side by side, the first the baseline of the
// others, as a text table with each run's latency histogram
// ([Report.WriteText]) or as JSON ([Report.WriteJSON]):
//
//	               direct  portcullis  portcullis vs direct
//	workers             1           1
//	time            1.00s       1.00s
//	queries        10,000       7,000
//	errors              0           2
//	throughput   10,000/s     6,993/s                 0.70×
//	latency p50     110µs       165µs               +55.0µs
//	latency p90     178µs       267µs               +89.6µs
//	latency p99     198µs       298µs               +99.8µs
//	latency max    2.00ms      5.00ms               +3.00ms
//
//	latency of direct (10,000 queries):
//	  80.0µs -  120µs  ██████████████████████████████   57.5%
//	  ...
package bench
