package storage_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/portcullis-db/portcullis/ca/storage"
)

func TestErrorHelpers(t *testing.T) {
	errs := map[string]error{
		"notfound": &storage.NotFoundError{Key: "users/alice"},
		"exists":   &storage.AlreadyExistsError{Key: "users/alice"},
		"compare":  &storage.CompareFailedError{Key: "users/alice", Expected: 7},
		"compare0": &storage.CompareFailedError{Key: "users/alice"},
	}
	for name, err := range errs {
		wrapped := fmt.Errorf("auth: saving user: %w", err)
		for _, e := range []error{err, wrapped} {
			if got, want := storage.IsNotFound(e), name == "notfound"; got != want {
				t.Errorf("%s: IsNotFound(%v) = %v", name, e, got)
			}
			if got, want := storage.IsAlreadyExists(e), name == "exists"; got != want {
				t.Errorf("%s: IsAlreadyExists(%v) = %v", name, e, got)
			}
			if got, want := storage.IsCompareFailed(e), strings.HasPrefix(name, "compare"); got != want {
				t.Errorf("%s: IsCompareFailed(%v) = %v", name, e, got)
			}
		}
		if msg := err.Error(); !strings.Contains(msg, `"users/alice"`) || !strings.HasPrefix(msg, "storage: ") || strings.Count(msg, ". ") > 0 {
			t.Errorf("%s: message %q should be one sentence naming the key", name, msg)
		}
	}
	if !strings.Contains(errs["compare"].Error(), "revision 7") {
		t.Errorf("message %q does not name the expected revision", errs["compare"])
	}
	for _, err := range []error{nil, errors.New("other"), storage.ErrClosed} {
		if storage.IsNotFound(err) || storage.IsAlreadyExists(err) || storage.IsCompareFailed(err) {
			t.Errorf("%v matched a typed error", err)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"users/alice", "a", "inventory/db/host-1/pg1", "ünïcode/ключ", strings.Repeat("k", storage.MaxKeyLen)} {
		if err := storage.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v", key, err)
		}
	}
	for _, key := range []string{"", "a\x00b", "\xff", strings.Repeat("k", storage.MaxKeyLen+1)} {
		err := storage.ValidateKey(key)
		if err == nil {
			t.Errorf("ValidateKey(%.20q) accepted it", key)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("ValidateKey error is %d bytes long; long keys must be shortened", len(err.Error()))
		}
	}
	if storage.ValidateLimit(-1) == nil || storage.ValidateLimit(0) != nil || storage.ValidateLimit(5) != nil {
		t.Error("ValidateLimit accepts or rejects the wrong limits")
	}
}

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[storage.EventType]string{
		storage.EventPut:    "put",
		storage.EventDelete: "delete",
		0:                   "EventType(0)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(typ), got, want)
		}
	}
}
