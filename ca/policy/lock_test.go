package policy

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLockMatches(t *testing.T) {
	tests := []struct {
		target LockTarget
		user   string
		roles  []string
		want   bool
	}{
		{LockTarget{User: "alice"}, "alice", nil, true},
		{LockTarget{User: "alice"}, "bob", []string{"alice"}, false},
		{LockTarget{Role: "contractor"}, "bob", []string{"access", "contractor"}, true},
		{LockTarget{Role: "contractor"}, "contractor", []string{"access"}, false},
		{LockTarget{User: "alice", Role: "editor"}, "alice", []string{"editor"}, true},
		{LockTarget{User: "alice", Role: "editor"}, "alice", []string{"access"}, false},
		{LockTarget{User: "alice", Role: "editor"}, "bob", []string{"editor"}, false},
		{LockTarget{}, "alice", []string{"access"}, false},
		{LockTarget{}, "", nil, false},
	}
	for _, tt := range tests {
		l := Lock{Name: "l", Target: tt.target}
		if got := l.Matches(tt.user, tt.roles); got != tt.want {
			t.Errorf("lock on %s: Matches(%q, %q) = %v, want %v", tt.target, tt.user, tt.roles, got, tt.want)
		}
	}
}

func TestLockExpired(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		expires time.Time
		want    bool
	}{
		{time.Time{}, false},
		{now.Add(time.Second), false},
		{now, true},
		{now.Add(-time.Second), true},
	}
	for _, tt := range tests {
		if got := (Lock{Expires: tt.expires}).Expired(now); got != tt.want {
			t.Errorf("Expires %v: Expired(%v) = %v, want %v", tt.expires, now, got, tt.want)
		}
	}
}

func TestCheckLocks(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	locks := []Lock{
		{Name: "old", Target: LockTarget{User: "alice"}, Message: "expired lock", Expires: now.Add(-time.Hour)},
		{Name: "contractors", Target: LockTarget{Role: "contractor"}, Message: "Contract ended.\nCall IT.", Expires: now.Add(time.Hour)},
		{Name: "alice", Target: LockTarget{User: "alice"}, Message: "suspicious activity"},
		{Name: "quiet", Target: LockTarget{User: "carol"}},
	}
	tests := []struct {
		user  string
		roles []string
		want  string // "" = not locked
		lock  string
	}{
		{"alice", []string{"access"}, "user alice is locked: suspicious activity; ask an administrator to remove the lock", "alice"},
		{"bob", []string{"access", "contractor"}, "user bob is locked by a lock on role contractor until 2026-03-01T13:00:00Z: Contract ended. Call IT; ask an administrator to remove the lock", "contractors"},
		{"carol", nil, "user carol is locked; ask an administrator to remove the lock", "quiet"},
		{"dave", []string{"access"}, "", ""},
	}
	for _, tt := range tests {
		err := CheckLocks(locks, tt.user, tt.roles, now)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckLocks(%s) = %v, want nil", tt.user, err)
			}
			continue
		}
		if !IsLocked(err) || !IsLocked(fmt.Errorf("wrapped: %w", err)) {
			t.Fatalf("CheckLocks(%s) = %v, want a *LockError", tt.user, err)
		}
		if err.Error() != tt.want {
			t.Errorf("CheckLocks(%s) = %q\nwant             %q", tt.user, err, tt.want)
		}
		if got := err.(*LockError).Lock.Name; got != tt.lock {
			t.Errorf("CheckLocks(%s) matched lock %q, want %q", tt.user, got, tt.lock)
		}
	}
	if err := CheckLocks(locks, "alice", nil, now); IsAccessDenied(err) {
		t.Error("a LockError counts as an AccessDeniedError")
	}
	if err := CheckLocks(nil, "alice", nil, now); err != nil {
		t.Errorf("CheckLocks with no locks = %v", err)
	}
}

func TestLockValidate(t *testing.T) {
	ok := Lock{Name: "l1", Target: LockTarget{User: "alice@example.com"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
	tests := []struct {
		lock Lock
		want string
	}{
		{Lock{Name: "", Target: LockTarget{User: "a"}}, `invalid lock: name: the name is empty`},
		{Lock{Name: "l", Target: LockTarget{}}, `invalid lock "l": target: a lock needs a target user or role`},
		{Lock{Name: "l", Target: LockTarget{User: "Alice"}}, `invalid lock "l": target.user: use 1 to 64`},
		{Lock{Name: "l", Target: LockTarget{Role: "-x"}}, `invalid lock "l": target.role: use 1 to 64`},
		{Lock{Name: "l", Target: LockTarget{Role: "x"}, Message: strings.Repeat("m", 513)}, `message: the message is longer than 512 bytes`},
	}
	for _, tt := range tests {
		err := tt.lock.Validate()
		if !IsValidationError(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.lock, err, tt.want)
		}
	}
}

func TestLockJSON(t *testing.T) {
	created := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := Lock{Name: "l1", Target: LockTarget{Role: "contractor"}, Message: "m", CreatedBy: "admin", Created: created}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"l1","target":{"role":"contractor"},"message":"m","created_by":"admin","created":"2026-03-01T12:00:00Z"}`
	if string(b) != want {
		t.Errorf("json.Marshal(lock) = %s\nwant %s", b, want)
	}
	var back Lock
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, l) {
		t.Errorf("JSON round trip = %+v, %v; want %+v", back, err, l)
	}
}
