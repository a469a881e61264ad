package bench

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// shared is the PostgreSQL and MariaDB of this package's integration
// tests.
var shared = &dbtest.Shared{Options: dbtest.Options{Users: []string{"alice"}, Databases: []string{"app"}}}

// TestMain stops the shared servers after the tests and then fails the
// run if a worker or a driver goroutine was left behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
