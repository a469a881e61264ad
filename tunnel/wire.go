package tunnel

import (
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Names on the wire. They are part of the protocol between agents and
// proxies of the same cluster; changing one breaks mixed-version clusters.
const (
	// ChannelSession is the channel type the proxy opens to an agent for
	// each client session (Server.Dial). Its extra data is the caller's
	// opaque routing blob.
	ChannelSession = "portcullis-session"
	// ChannelAuth is the channel type an agent opens to reach the Auth
	// service through the proxy (Agent.DialAuth). The proxy serves it
	// with Server.ChannelHandlers[ChannelAuth].
	ChannelAuth = "portcullis-auth"

	// RoleExtension is the SSH certificate extension that carries the
	// agent's system role (ca.Authority.SignSSHAgent sets it).
	RoleExtension = "system-role@portcullis"

	// requestKeepAlive is sent by both ends; the peer answers true.
	// OpenSSH uses the same name, so packet captures read naturally.
	requestKeepAlive = "keepalive@openssh.com"
	// requestMetadata carries the agent's opaque metadata (agent -> proxy).
	requestMetadata = "metadata@portcullis"
	// requestPeers carries the JSON list of proxies (proxy -> agent).
	requestPeers = "peers@portcullis"

	// maxPeers bounds a peer list an agent accepts.
	maxPeers = 1024
)

// Peer is a proxy an agent should keep a tunnel to.
type Peer struct {
	// ID is the proxy's host ID (the KeyId of its SSH host certificate).
	// Optional: when set, an agent that already holds a tunnel to that
	// proxy does not dial Addr again.
	ID string `json:"id,omitempty"`
	// Addr is "host:port" of the proxy's tunnel endpoint. The host part
	// must be a principal of that proxy's host certificate.
	Addr string `json:"addr"`
}

func encodePeers(peers []Peer) []byte {
	b, err := json.Marshal(peers)
	if err != nil { // []Peer of strings always marshals
		panic(err)
	}
	return b
}

func decodePeers(b []byte) ([]Peer, error) {
	var peers []Peer
	if err := json.Unmarshal(b, &peers); err != nil {
		return nil, fmt.Errorf("tunnel: proxy sent an unreadable peer list: %w", err)
	}
	if len(peers) > maxPeers {
		return nil, fmt.Errorf("tunnel: proxy sent %d peers, more than the limit of %d", len(peers), maxPeers)
	}
	out := peers[:0]
	for _, p := range peers {
		if strings.TrimSpace(p.Addr) == "" {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// sshConfig is the algorithm choice both ends offer. AES-GCM first: with
// AES-NI it is the fastest AEAD x/crypto/ssh has; ChaCha20-Poly1305 for CPUs
// without it. Only AEAD ciphers, so no MAC is ever negotiated. curve25519 key
// exchange first (cheap handshakes when a thousand agents reconnect at once),
// the ML-KEM hybrid and P-256 as alternatives.
func sshConfig() ssh.Config {
	return ssh.Config{
		Ciphers:      []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM},
		KeyExchanges: []string{ssh.KeyExchangeCurve25519, ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeECDHP256},
	}
}

// hostCertAlgorithms are the host key algorithms an agent accepts:
// certificates only, so a proxy presenting a bare key fails key exchange.
func hostCertAlgorithms() []string {
	return []string{
		ssh.CertAlgoECDSA256v01, ssh.CertAlgoED25519v01, ssh.CertAlgoECDSA384v01,
		ssh.CertAlgoECDSA521v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSASHA512v01,
	}
}

func keyIn(keys []ssh.PublicKey, k ssh.PublicKey) bool {
	m := k.Marshal()
	for _, c := range keys {
		if c != nil && string(c.Marshal()) == string(m) {
			return true
		}
	}
	return false
}
