package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// The tunnel agent logs through a logger named and given fields by its
// owners, as dbagent.Service and tunnel.Agent do.
func TestTunnelWatch(t *testing.T) {
	state := newAgentsState()
	root := zap.New(&tunnelWatch{state: state})
	a := root.Named("db").Named("tunnel").With(zap.String("host_id", "a")).With(zap.String("proxy", "p:1"))
	b := root.Named("db").Named("tunnel").With(zap.String("host_id", "b"))

	a.Info(msgTunnelUp, zap.String("proxy_id", "x"))
	b.Info(msgTunnelUp)
	a.Info("something else")
	if n, _ := state.snapshot(); n != 2 {
		t.Fatalf("%d up, want 2", n)
	}
	_, changed := state.snapshot()
	a.Info(msgTunnelUp) // again: no change
	if _, c := state.snapshot(); c != changed {
		t.Error("a repeated up changed the state")
	}
	b.Info(msgTunnelDown, zap.Error(context.Canceled))
	b.Info(msgTunnelDown) // a failed reconnect logs it again
	if n, _ := state.snapshot(); n != 1 {
		t.Errorf("%d up, want 1", n)
	}
	root.Info(msgTunnelUp) // no host_id: ignored
	root.Debug(msgTunnelUp, zap.String("host_id", "c"))
	if n, _ := state.snapshot(); n != 1 {
		t.Errorf("%d up, want 1", n)
	}
}

func TestRunAgentsChecksConfig(t *testing.T) {
	var out bytes.Buffer
	if err := RunAgents(context.Background(), AgentsConfig{N: 1}, &out); err == nil {
		t.Error("no error without a proxy and a token")
	}
	var stderr bytes.Buffer
	if code := AgentsMain(context.Background(), []string{"-bogus"}, strings.NewReader(""), &out, &stderr); code != 2 {
		t.Errorf("AgentsMain with a bad flag: %d", code)
	}
}

func TestAgentsReportJSON(t *testing.T) {
	b, _ := json.Marshal(AgentsReport{T: 5, Joined: 3, Connected: 2})
	if string(b) != `{"t":5,"joined":3,"connected":2}` {
		t.Errorf("%s", b)
	}
}
