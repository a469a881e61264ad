package mysql

import (
	"os"
	"testing"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// shared is the MariaDB server of this package's integration tests.
var shared = &dbtest.Shared{Options: dbtest.Options{Users: []string{"alice", "bob"}, Databases: []string{"app"}}}

// TestMain stops the shared servers after the tests, then fails the run if
// a relay, worker or driver goroutine was left behind.
func TestMain(m *testing.M) { os.Exit(shared.RunTests(m)) }
