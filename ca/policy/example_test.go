package policy_test

import (
	"fmt"
	"time"

	"github.com/portcullis-db/portcullis/ca/policy"
)

func ExampleAccessChecker_CheckDatabaseAccess() {
	noRoot, err := policy.ParseRole([]byte(`
kind: role
version: v1
metadata: {name: no-root}
spec:
  deny:
    db_users: [root]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	access, _ := policy.PresetRole(policy.PresetAccess)

	// Traits come from the user's identity (its certificate).
	traits := map[string][]string{
		policy.TraitDBUsers: {"alice", "reader", "root"},
		policy.TraitDBNames: {"app"},
	}
	checker := policy.NewAccessChecker([]*policy.Role{access, noRoot}, traits)

	db := policy.Database{Name: "pg1", Protocol: "postgres", Labels: map[string]string{"env": "prod"}}
	fmt.Println(checker.CheckDatabaseAccess(db, "alice", "app"))
	fmt.Println(checker.CheckDatabaseAccess(db, "root", "app"))
	fmt.Println(checker.CheckDatabaseAccess(db, "bob", ""))
	fmt.Println(checker.AllowedDBUsers(db))
	// Output:
	// <nil>
	// access to database "pg1" as db user "root" with db name "app" denied: role "no-root" denies db user "root"
	// access to database "pg1" as db user "bob" denied: no role allows db user "bob" on database "pg1" (allowed: alice, reader)
	// [alice reader]
}

func ExampleAccessChecker_CheckRule() {
	editor, _ := policy.PresetRole(policy.PresetEditor)
	checker := policy.NewAccessChecker([]*policy.Role{editor}, nil)
	fmt.Println(checker.CheckRule(policy.ResourceUser, policy.VerbCreate))
	fmt.Println(checker.CheckRule(policy.ResourceAudit, policy.VerbRead))
	// Output:
	// <nil>
	// not allowed to read audit: no role allows read on audit; ask an administrator for a role with a rule that does
}

func ExampleParseRole() {
	_, err := policy.ParseRole([]byte(`
kind: role
version: v1
metadata: {name: dev}
spec:
  options: {max_session_ttl: 12 hours}
`))
	fmt.Println(err)
	// Output:
	// invalid role "dev" (line 6): spec.options.max_session_ttl: "12 hours" is not a duration; write it with units, like "12h", "30m" or "1h30m"
}

func ExampleCheckLocks() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	locks := []policy.Lock{{
		Name:    "alice-incident",
		Target:  policy.LockTarget{User: "alice"},
		Message: "suspicious activity",
	}}
	err := policy.CheckLocks(locks, "alice", []string{"access"}, now)
	fmt.Println(policy.IsLocked(err))
	fmt.Println(err)
	// Output:
	// true
	// user alice is locked: suspicious activity; ask an administrator to remove the lock
}
