package storage_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"

	"github.com/portcullis-db/portcullis/ca/storage"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

// A read-modify-write loop: read the item (revision 0 if absent), compute,
// and write only if nobody else wrote in between; otherwise read again.
func Example_compareAndSwap() {
	dir, err := os.MkdirTemp("", "portcullis-storage")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var b storage.Backend
	b, err = boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	ctx := context.Background()
	increment := func(key string) (int, error) {
		for {
			var rev int64
			n := 0
			item, err := b.Get(ctx, key)
			switch {
			case storage.IsNotFound(err):
			case err != nil:
				return 0, err
			default:
				rev = item.Revision
				if n, err = strconv.Atoi(string(item.Value)); err != nil {
					return 0, err
				}
			}
			n++
			_, err = b.CompareAndSwap(ctx, rev, storage.Item{Key: key, Value: []byte(strconv.Itoa(n))})
			if storage.IsCompareFailed(err) {
				continue // someone else wrote first
			}
			return n, err
		}
	}
	for range 3 {
		n, err := increment("counters/logins")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n)
	}
	// Output:
	// 1
	// 2
	// 3
}

// Watch first, then Range, then apply events newer than what Range saw.
func Example_watch() {
	dir, err := os.MkdirTemp("", "portcullis-storage")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := boltstore.Open(filepath.Join(dir, "state.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()

	if _, err := b.Put(ctx, storage.Item{Key: "locks/alice", Value: []byte("compromised laptop")}); err != nil {
		log.Fatal(err)
	}

	w, err := b.Watch(ctx, "locks/")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	items, err := b.Range(ctx, "locks/", 0)
	if err != nil {
		log.Fatal(err)
	}
	seen := map[string]int64{}
	for _, it := range items {
		fmt.Println("locked:", it.Key)
		seen[it.Key] = it.Revision
	}

	if err := b.Delete(ctx, "locks/alice"); err != nil {
		log.Fatal(err)
	}
	ev, ok := <-w.Events()
	if !ok {
		log.Fatalf("watcher ended (%v): Range again and watch again", w.Err())
	}
	if ev.Item.Revision > seen[ev.Item.Key] {
		fmt.Println(ev.Type, ev.Item.Key)
	}
	// Output:
	// locked: locks/alice
	// delete locks/alice
}
