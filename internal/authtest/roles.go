package authtest

import (
	"context"
	"testing"

	"github.com/portcullis-db/portcullis/ca/policy"
)

// DevOnlyRole is a role, dev-only, that allows the databases labelled
// env=dev, as the db users and db names in the user's traits db_users
// and db_names.
const DevOnlyRole = `kind: role
version: v1
metadata:
  name: dev-only
spec:
  allow:
    db_labels: {env: dev}
    db_users: ["{{internal.db_users}}"]
    db_names: ["{{internal.db_names}}"]
`

// AddRole creates a role from its YAML document as the admin.
func (c *Cluster) AddRole(t testing.TB, doc string) {
	t.Helper()
	r, err := policy.ParseRole([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.admin.CreateRole(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}
