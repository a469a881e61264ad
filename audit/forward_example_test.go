package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/portcullis-db/portcullis/audit"
)

// A database agent ships its events to the Auth service with a Forwarder.
// In an agent, Send is authclient.Client.EmitAuditEvents over the tunnel;
// here it prints what it would send.
func ExampleForwarder() {
	tmp, err := os.MkdirTemp("", "forwarder-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)

	fwd, err := audit.NewForwarder(audit.ForwarderConfig{
		SpoolDir:    filepath.Join(tmp, "spool"), // events wait here while the Auth service is unreachable
		ClusterName: "example",
		Send: func(ctx context.Context, events []json.RawMessage) error {
			for _, raw := range events {
				var e struct {
					Type  string `json:"event"`
					User  string `json:"user"`
					Query string `json:"query"`
				}
				if err := json.Unmarshal(raw, &e); err != nil {
					return err
				}
				fmt.Println(e.Type, e.User, e.Query)
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	err = fwd.EmitAuditEvent(context.Background(), &audit.ResourceChange{
		Metadata:         audit.Metadata{Type: audit.TypeUserCreate},
		UserMetadata:     audit.UserMetadata{User: "admin"},
		ResourceMetadata: audit.ResourceMetadata{Kind: audit.KindUser, Name: "alice"},
	})
	if err != nil {
		panic(err)
	}
	// Close delivers what is queued (or spools it for the next start).
	if err := fwd.Close(context.Background()); err != nil {
		panic(err)
	}
	// Output: user.create admin
}
