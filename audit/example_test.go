package audit_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/portcullis-db/portcullis/audit"
)

// A FileLog writes events as JSON lines; Search reads them back.
func ExampleFileLog() {
	tmp, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)

	log, err := audit.NewFileLog(audit.FileLogConfig{
		Dir:        filepath.Join(tmp, "audit"),
		MaxSize:    50 << 20,
		MaxBackups: 30,
		Durability: audit.SyncEachEvent, // on disk when EmitAuditEvent returns
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	err = log.EmitAuditEvent(ctx, &audit.UserLogin{
		Metadata:           audit.Metadata{Type: audit.TypeUserLogin, ClusterName: "example"},
		UserMetadata:       audit.UserMetadata{User: "alice", Roles: []string{"access"}},
		Method:             audit.LoginMethodPasswordTOTP,
		ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: "203.0.113.7:51234"},
		Status:             audit.Status{Success: true},
	})
	if err != nil {
		panic(err)
	}
	if err := log.Close(); err != nil {
		panic(err)
	}

	res, err := audit.Search(ctx, log.Dir(), audit.Query{User: "alice", Types: []string{audit.TypeUserLogin}})
	if err != nil {
		panic(err)
	}
	for _, ev := range res.Events {
		fmt.Println(ev.Type(), ev.Code(), ev.User(), ev["method"], ev["success"])
	}
	// Output: user.login C1000I alice password+totp true
}

// alertSink is a custom sink: it writes failed logins to w, as a pager or
// SIEM forwarder might.
type alertSink struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *alertSink) EmitAuditEvent(_ context.Context, e audit.Event) error {
	login, ok := e.(*audit.UserLogin)
	if !ok || login.Success {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := fmt.Fprintf(s.w, "%s %s from %s: %s\n", login.Code, login.User, login.ClientAddr, login.Error)
	return err
}

// Any type with EmitAuditEvent is a sink. A Stamper in front of a
// MultiEmitter gives every sink the same ID, time and code.
func Example_customSink() {
	var emitter audit.Emitter = &audit.Stamper{
		ClusterName: "example",
		Next: audit.MultiEmitter{
			&alertSink{w: os.Stdout},
			&audit.ZapEmitter{Logger: zap.NewNop()},
		},
	}
	ctx := context.Background()
	outcomes := []audit.Status{
		{Success: true},
		{Success: false, Error: "invalid user name or password"},
	}
	for _, status := range outcomes {
		err := emitter.EmitAuditEvent(ctx, &audit.UserLogin{
			Metadata:           audit.Metadata{Type: audit.TypeUserLogin},
			UserMetadata:       audit.UserMetadata{User: "mallory"},
			Method:             audit.LoginMethodPassword,
			ConnectionMetadata: audit.ConnectionMetadata{ClientAddr: "198.51.100.9"},
			Status:             status,
		})
		if err != nil {
			panic(err)
		}
	}
	// Output: C1000W mallory from 198.51.100.9: invalid user name or password
}
