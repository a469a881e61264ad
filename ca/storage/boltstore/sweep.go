package boltstore

import (
	"bytes"
	"context"
	"time"

	bolt "go.etcd.io/bbolt"
)

// sweepBatch bounds how many expired items one write transaction deletes,
// so that a large expiry wave does not hold the writer lock for long.
const sweepBatch = 500

// Sweep deletes the items that have expired by now (per Options.Clock) and
// emits a storage.EventDelete for each. It returns how many it deleted. The
// background sweeper calls it every Options.SweepInterval.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if due, err := s.sweepDue(ctx); err != nil || !due {
			return total, err
		}
		n, more, err := s.sweepOnce(ctx)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// sweepDue reports, in a read transaction, whether anything has expired, so
// that an idle sweep takes no write lock.
func (s *Store) sweepDue(ctx context.Context) (bool, error) {
	var due bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketExpiry).Cursor().First()
		if k == nil {
			return nil
		}
		t, _, err := expiryTime(k)
		// A corrupt index key is due: sweepOnce removes it.
		due = err != nil || !s.clock().Before(t)
		return nil
	})
	return due, err
}

// sweepOnce deletes up to sweepBatch expired items in one transaction and
// reports whether more may be due.
func (s *Store) sweepOnce(ctx context.Context) (n int, more bool, err error) {
	err = s.update(ctx, func(w *writeTx) error {
		// Deleting while a cursor iterates can skip keys, so collect
		// first, then delete.
		var index [][]byte // index entries to drop
		var keys []string  // items to delete
		c := w.expiry.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(index) == sweepBatch {
				more = true
				break
			}
			t, key, err := expiryTime(k)
			if err == nil && w.now.Before(t) {
				break
			}
			index = append(index, bytes.Clone(k))
			if err != nil {
				continue // a corrupt index entry: drop it
			}
			e, ok, err := getEnvelope(w.items, key)
			if err != nil || !ok || !e.expires.Equal(t) {
				// An index entry without its item: drop it alone.
				// (A corrupt item is left for a person to see.)
				continue
			}
			keys = append(keys, key)
		}
		for _, k := range index {
			w.check(w.expiry.Delete(k))
		}
		for _, key := range keys {
			w.deleteItem(key)
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return n, more, nil
}

// sweepLoop runs Sweep every interval until ctx is cancelled. Errors are
// dropped: the next tick tries again, and readers never see expired items
// in any case.
func (s *Store) sweepLoop(ctx context.Context, interval time.Duration) {
	defer close(s.sweepDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Sweep(ctx)
		}
	}
}
