// Package storage defines the key-value interface behind the Auth service's
// state: users, roles, join tokens, locks, CA keys and the live inventory.
//
// The interface is small on purpose (get, put, create, compare-and-swap,
// delete, range by prefix, watch) so that it can be served by an embedded
// file (package boltstore, the default) or by a database that several Auth
// services share (PostgreSQL; see below). Package storagetest holds the
// conformance suite every implementation must pass.
//
// # Keys and values
//
// Keys are slash-separated paths such as "users/alice", "roles/access" or
// "inventory/db/<host>/<name>"; see [ValidateKey] for what is accepted. Keys
// sort byte-wise. Values are opaque bytes; a backend copies them on the way in
// and out, so callers may reuse their slices.
//
// # Revisions
//
// Every write (Put, Create, CompareAndSwap, Delete, and the deletion of an
// expired item) takes the next revision from one counter per backend, so
// revisions are strictly increasing across all keys of a backend, never reused,
// and survive restarts. An item carries the revision of the write that stored
// it; a delete [Event] carries the revision of the deletion. Revisions start
// at 1, so revision 0 means "absent": CompareAndSwap with expected revision 0
// succeeds only when the key has no live item.
//
// A read-modify-write loop reads an item (revision 0 if absent), computes the
// new value and calls CompareAndSwap with the revision it read; on a
// [*CompareFailedError] it reads again and retries.
//
// # TTL
//
// An item with a non-zero Expires is live while now < Expires, where now comes
// from the backend's injected clock. An item that has expired is invisible at
// once: Get and Delete report [*NotFoundError], Range skips it, Create may
// replace it and CompareAndSwap treats it as absent. Removing it from storage
// happens later, in a sweep, which deletes expired items and emits an
// [EventDelete] for each; how often a backend sweeps is its own option (a
// backend that also implements [Sweeper] can be swept on demand). A watcher
// therefore learns of an expiry up to one sweep interval late, and an expired
// item that is overwritten before the sweep produces only the put event. An
// Expires not after the current time is accepted and makes the item expire at
// once. Times come back in UTC without a monotonic reading; compare them with
// time.Time.Equal.
//
// # Watch
//
// Watch returns a [Watcher] that receives, for every write committed after
// Watch returns whose key has the watched prefix, one [Event], in revision
// order. To build a consistent view, call Watch first, then Range, then apply
// events, skipping those whose revision is not greater than what Range
// returned for that key.
//
// A slow watcher never blocks writers. Each watcher has a bounded buffer; if a
// write finds it full, the watcher is closed: Events is closed after the
// events already buffered, Done is closed and Err returns [ErrWatcherOverflow].
// The consumer must then read the state again with Range and start a new
// watcher, because events were lost. A watcher also ends when its context is
// cancelled (Err returns the context's error), when the backend is closed
// ([ErrClosed]) or when the consumer calls Close (Err returns nil).
//
// # A PostgreSQL implementation
//
// The interface admits a PostgreSQL backend in which several Auth services
// share one database for high availability. A sketch, for the engineer who
// writes it: one table kv(key text COLLATE "C" PRIMARY KEY, value bytea,
// expires timestamptz NULL, revision bigint) with an index on expires, a
// one-row table kv_rev(rev bigint) and an append-only table kv_events(rev
// bigint PRIMARY KEY, key text, type smallint, value bytea, expires
// timestamptz). Every write is one transaction that starts with UPDATE kv_rev
// SET rev = rev + 1 RETURNING rev; the row lock serializes writers until
// commit, so revisions commit in order (a plain sequence would not: a smaller
// nextval can commit after a larger one and a watcher would skip it). Get is a
// SELECT by key with expires IS NULL OR expires > $now; Put is INSERT ... ON
// CONFLICT (key) DO UPDATE; Create is INSERT ... ON CONFLICT DO UPDATE ...
// WHERE the existing row has expired, with zero rows affected meaning
// [*AlreadyExistsError]; CompareAndSwap is UPDATE ... WHERE key = $1 AND
// revision = $2 AND the row is live (zero rows: [*CompareFailedError]; for
// expected revision 0, Create's statement); Delete is DELETE ... WHERE the row
// is live, RETURNING key; Range is SELECT ... WHERE key >= $prefix AND key <
// $prefix-successor AND live ORDER BY key LIMIT $n, with the C collation so
// that order and prefix bounds are byte-wise. Each write also inserts its
// event into kv_events and runs NOTIFY kv_events, '<rev>' in the same
// transaction (the payload is only a wake-up, since NOTIFY payloads are
// limited to 8000 bytes). Watch uses one LISTEN connection per Auth service;
// on each notification it reads SELECT ... FROM kv_events WHERE rev > $last
// ORDER BY rev and fans the rows out to that service's watchers with the same
// buffer and overflow rule as above; if the LISTEN connection drops, all
// watchers are closed with an error so that consumers re-sync. Sweeping is
// DELETE FROM kv WHERE expires <= $now RETURNING key, with one event per row,
// run by every Auth service (concurrent sweeps are harmless); old kv_events
// rows are pruned after a few minutes. Take $now from the injected clock,
// not from now() in SQL, so that the conformance suite can control expiry.
package storage
