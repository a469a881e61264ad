// Package boltstore is the embedded default [storage.Backend]: the Auth
// service's whole state in one bbolt file under its data directory, so a
// cluster needs no database server to start.
//
// # Why bbolt
//
// go.etcd.io/bbolt is pure Go (no cgo, so the binaries cross-compile and
// static-link), keeps everything in one file, gives ACID transactions with a
// single writer and many concurrent readers (the Auth service's load: many
// reads, few writes) and keeps keys sorted in a B+tree, so Range by prefix is a
// cursor seek and scan. It is a small dependency. modernc.org/sqlite is also
// pure Go, but it brings a whole SQL engine that this key-value interface
// would not use, as a very large machine-transpiled dependency, with no gain in
// what can be stored.
//
// # One process per file
//
// bbolt takes an exclusive lock on the file, so only one process can open it.
// Open waits [Options.LockTimeout] for the lock and then fails with an error
// saying that the data directory is in use by another Auth service. Watchers
// are an in-process fan-out after each committed write. To run several Auth
// services for high availability, use a backend they can share (PostgreSQL;
// see package storage).
//
// # Layout
//
// The file holds three buckets: "meta" (the format version and the revision
// counter), "items" (key -> envelope: a 22-byte header with format, flags,
// revision and expiry, followed by the value) and "expiry" (expiry time + key
// -> nothing, an index that lets the sweeper find expired items without
// scanning every item). The file is created with mode 0600.
//
// # Expiry
//
// Expired items are invisible to reads at once. A background sweeper deletes
// them every [Options.SweepInterval] (default 5s) and emits one
// [storage.EventDelete] per item; [Store.Sweep] does the same on demand.
package boltstore
