package boltstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/portcullis-db/portcullis/ca/storage"
	"github.com/portcullis-db/portcullis/ca/storage/boltstore"
)

func Example() {
	dataDir, err := os.MkdirTemp("", "portcullis-auth")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	s, err := boltstore.Open(filepath.Join(dataDir, "state.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	ctx := context.Background()
	if _, err := s.Put(ctx, storage.Item{Key: "roles/access", Value: []byte("kind: role")}); err != nil {
		log.Fatal(err)
	}
	// A heartbeat record that disappears unless it is refreshed.
	if _, err := s.Put(ctx, storage.Item{
		Key:     "inventory/db/host1/pg1",
		Value:   []byte(`{"protocol":"postgres"}`),
		Expires: time.Now().Add(time.Minute),
	}); err != nil {
		log.Fatal(err)
	}

	item, err := s.Get(ctx, "roles/access")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s = %s\n", item.Key, item.Value)

	_, err = s.Get(ctx, "roles/nobody")
	fmt.Println(storage.IsNotFound(err))
	// Output:
	// roles/access = kind: role
	// true
}
