package tunnel

import (
	"cmp"
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// AgentInfo describes one tunnel connection from an agent. An agent may hold
// several (it reconnects, or a load balancer sent two of its tunnels here);
// each has its own ConnID.
type AgentInfo struct {
	// ID is the agent's host ID: the KeyId and principal of its SSH
	// certificate, which is also the SSH user it logged in as.
	ID string
	// ConnID tells this connection apart from the agent's others. Unique
	// within one Server, increasing with connection time.
	ConnID uint64
	// Role is the system role from the certificate's RoleExtension.
	Role string
	// RemoteAddr is the transport address the agent connected from.
	RemoteAddr net.Addr
	// ConnectedAt is when the handshake completed (Server.Clock).
	ConnectedAt time.Time
	// CertSerial and CertExpires describe the agent's SSH certificate.
	// CertExpires is zero for a certificate without an end.
	CertSerial  uint64
	CertExpires time.Time
	// Metadata is the opaque blob the agent last advertised (nil until it
	// sends one). Shared: do not modify.
	Metadata []byte
}

// AgentEventType says what happened to an agent connection.
type AgentEventType int

const (
	// AgentConnected: a connection completed its handshake. Metadata is
	// usually still nil; AgentMetadataChanged follows.
	AgentConnected AgentEventType = iota + 1
	// AgentMetadataChanged: the agent advertised new metadata.
	AgentMetadataChanged
	// AgentDisconnected: the connection ended (either end closed it, or
	// keepalives went unanswered, or the certificate expired).
	AgentDisconnected
)

func (t AgentEventType) String() string {
	switch t {
	case AgentConnected:
		return "connected"
	case AgentMetadataChanged:
		return "metadata"
	case AgentDisconnected:
		return "disconnected"
	}
	return "unknown"
}

// AgentEvent is passed to Server.OnAgentEvent.
type AgentEvent struct {
	Type  AgentEventType
	Agent AgentInfo
}

// agentConn is one registered tunnel connection on the proxy.
type agentConn struct {
	conn   *ssh.ServerConn
	ka     *keepAlive
	ctx    context.Context // ends when the connection ends; for channel handlers
	cancel context.CancelFunc

	info AgentInfo // guarded by Server.mu (Metadata changes)

	peersMu   sync.Mutex
	peersSent uint64 // version of the peer list last sent
}

// register adds ac to the registry unless the server is closing.
func (s *Server) register(ac *agentConn, c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, c)
	if s.closed {
		return false
	}
	s.nextConnID++
	ac.info.ConnID = s.nextConnID
	s.agents[ac.info.ID] = append(s.agents[ac.info.ID], ac) // newest last
	s.wg.Add(1)                                             // serveAgent
	return true
}

func (s *Server) unregister(ac *agentConn) AgentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.agents[ac.info.ID]
	if i := slices.Index(list, ac); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(s.agents, ac.info.ID)
	} else {
		s.agents[ac.info.ID] = list
	}
	return ac.info
}

func (s *Server) setMetadata(ac *agentConn, md []byte) AgentInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	ac.info.Metadata = md
	return ac.info
}

// connsFor returns the agent's connections, newest first.
func (s *Server) connsFor(agentID string) []*agentConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := slices.Clone(s.agents[agentID])
	slices.Reverse(list)
	return list
}

// Agents lists every live agent connection, sorted by agent ID and then by
// connection time (oldest first).
func (s *Server) Agents() []AgentInfo {
	s.init() // a configuration error leaves an empty registry
	s.mu.Lock()
	out := make([]AgentInfo, 0, len(s.agents))
	for _, list := range s.agents {
		for _, ac := range list {
			out = append(out, ac.info)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b AgentInfo) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.ConnID, b.ConnID)
	})
	return out
}

func (s *Server) emit(t AgentEventType, info AgentInfo) {
	if s.OnAgentEvent != nil {
		s.OnAgentEvent(AgentEvent{Type: t, Agent: info})
	}
}

// SetPeers sets the proxies that connected agents should also keep a tunnel
// to, and sends the list to every connected agent if it changed (and to each
// agent that connects later). Entries with this proxy's own host ID and
// entries without an address are dropped. Safe to call at any time, e.g.
// from a watch on the cluster's proxy inventory.
func (s *Server) SetPeers(peers []Peer) {
	if err := s.init(); err != nil {
		return
	}
	clean := make([]Peer, 0, len(peers))
	for _, p := range peers {
		if p.Addr == "" || (p.ID != "" && p.ID == s.selfID) {
			continue
		}
		clean = append(clean, p)
	}
	s.mu.Lock()
	if slices.Equal(clean, s.peers) || s.closed {
		s.mu.Unlock()
		return
	}
	s.peers = clean
	s.peersVersion++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.mu.Lock()
		var all []*agentConn
		for _, list := range s.agents {
			all = append(all, list...)
		}
		s.mu.Unlock()
		for _, ac := range all {
			s.sendPeers(ac)
		}
	}()
}

// sendPeers sends the current peer list to ac unless it already has it.
func (s *Server) sendPeers(ac *agentConn) {
	s.mu.Lock()
	peers, version := s.peers, s.peersVersion
	s.mu.Unlock()
	ac.peersMu.Lock()
	defer ac.peersMu.Unlock()
	if version == 0 || version <= ac.peersSent {
		return
	}
	ac.peersSent = version
	if _, _, err := ac.conn.SendRequest(requestPeers, false, encodePeers(peers)); err != nil {
		s.log.Debug("could not send peer list", agentFields(ac.info, err)...)
	}
}
