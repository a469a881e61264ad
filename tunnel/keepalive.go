package tunnel

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// keepAlive probes an SSH connection with keepalive@openssh.com requests and
// closes it when KeepAliveCount probes in a row go unanswered.
//
// It holds no goroutine while idle: a time.AfterFunc timer fires every
// interval, and the callback (which runs on its own goroutine) sends the probe
// and waits for the answer. The timer is re-armed before waiting, so a probe
// that hangs on a dead peer is counted as missed at each following tick; the
// count-th miss closes the connection, which also releases the waiting probe.
type keepAlive struct {
	conn     ssh.Conn
	interval time.Duration
	count    int32
	// heard, if set, reports whether the peer has shown it is alive
	// within the given time (two intervals); if so the probe is skipped. The agent uses
	// it so that it only probes when the proxy's own probes stop coming.
	heard func(within time.Duration) bool
	// check, if set, runs at every tick; a non-empty result is a reason
	// to drop the connection (e.g. the peer's certificate expired).
	check func() string
	// dead is called once with the reason, before the connection is closed.
	dead func(reason string)

	mu       sync.Mutex
	timer    *time.Timer
	stopped  bool // set by stop or drop; a stopped keepAlive never drops
	inflight atomic.Bool
	missed   atomic.Int32
}

func (k *keepAlive) start() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.timer = time.AfterFunc(k.interval, k.tick)
	}
}

func (k *keepAlive) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	if k.timer != nil {
		k.timer.Stop()
	}
}

func (k *keepAlive) rearm() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return false
	}
	k.timer.Reset(k.interval)
	return true
}

// drop closes the connection unless the keepAlive was stopped (the
// connection already ended for another reason) or already dropped it.
func (k *keepAlive) drop(reason string) {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped = true
	k.timer.Stop()
	k.mu.Unlock()
	if k.dead != nil {
		k.dead(reason)
	}
	k.conn.Close()
}

func (k *keepAlive) tick() {
	if !k.rearm() {
		return
	}
	if k.check != nil {
		if reason := k.check(); reason != "" {
			k.drop(reason)
			return
		}
	}
	if k.heard != nil && k.heard(2*k.interval) {
		k.missed.Store(0)
		return
	}
	if !k.inflight.CompareAndSwap(false, true) {
		if k.missed.Add(1) >= k.count {
			k.drop("peer missed keepalives")
		}
		return
	}
	_, _, err := k.conn.SendRequest(requestKeepAlive, true, nil)
	k.inflight.Store(false)
	if err != nil {
		k.drop("connection lost")
		return
	}
	k.missed.Store(0)
}

// atomicDuration is a time.Duration read and written atomically.
type atomicDuration struct{ v atomic.Int64 }

func (d *atomicDuration) set(v time.Duration) { d.v.Store(int64(v)) }
func (d *atomicDuration) get() time.Duration  { return time.Duration(d.v.Load()) }
