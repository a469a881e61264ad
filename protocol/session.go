package protocol

// SessionRequest is what a proxy sends to an agent in the extra data of a
// tunnel channel, before the mutual TLS that carries the session. It holds
// nothing the agent trusts for authorization: identity and route come from
// the session certificate the proxy presents inside the channel.
type SessionRequest struct {
	// Type is SessionConnect or SessionCancel.
	Type string `json:"type"`
	// ClientAddr is the database client's address as the proxy saw it.
	ClientAddr string `json:"client_addr,omitempty"`
	// Cancel is the PostgreSQL cancel key to forward (SessionCancel).
	Cancel *CancelKey `json:"cancel,omitempty"`
}

// Session request types.
const (
	SessionConnect = "connect"
	SessionCancel  = "cancel"
)

// MaxSessionRequestSize bounds a SessionRequest's encoding.
const MaxSessionRequestSize = 4 << 10

// CancelKey is a PostgreSQL backend key: the process ID and secret a
// server hands its client for cancelling queries.
type CancelKey struct {
	ProcessID uint32 `json:"pid"`
	Secret    []byte `json:"secret"`
}
