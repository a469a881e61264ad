package tunnel

import (
	"errors"
	"fmt"
)

// ErrServerClosed is returned by Server.Serve after Shutdown or Close, and by
// Server.Dial once shutdown has begun.
var ErrServerClosed = errors.New("tunnel: Server closed")

// NotConnectedError reports that there is no live tunnel to the wanted peer:
// Server.Dial found no connection from the agent, or Agent.OpenChannel found
// no connection to any proxy.
type NotConnectedError struct {
	// Target is the agent host ID (Server.Dial) or "proxy" (Agent).
	Target string
	// Err is the last transport error, if a tunnel existed but failed.
	Err error
}

func (e *NotConnectedError) Error() string {
	if e.Target == "proxy" {
		if e.Err != nil {
			return fmt.Sprintf("tunnel: no live tunnel to any proxy (%v); check that a proxy is reachable from this agent", e.Err)
		}
		return "tunnel: no live tunnel to any proxy; check that a proxy is reachable from this agent"
	}
	if e.Err != nil {
		return fmt.Sprintf("tunnel: agent %q is connected but its tunnel failed (%v); retry, the agent reconnects on its own", e.Target, e.Err)
	}
	return fmt.Sprintf("tunnel: agent %q is not connected to this proxy; check that the agent is running and can reach the proxy", e.Target)
}

func (e *NotConnectedError) Unwrap() error { return e.Err }

// IsNotConnected reports whether err says there is no live tunnel to the peer.
func IsNotConnected(err error) bool {
	var e *NotConnectedError
	return errors.As(err, &e)
}

// RejectedError reports that the peer refused to open a channel (unknown
// channel type, no handler, or shutting down).
type RejectedError struct {
	ChannelType string
	Reason      string // the peer's message
	Err         error  // the *ssh.OpenChannelError
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("tunnel: the peer refused a %s channel: %s", e.ChannelType, e.Reason)
}

func (e *RejectedError) Unwrap() error { return e.Err }

// IsRejected reports whether err says the peer refused the channel.
func IsRejected(err error) bool {
	var e *RejectedError
	return errors.As(err, &e)
}
