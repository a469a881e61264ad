package proxy_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/protocol"
	"github.com/portcullis-db/portcullis/proxy"
)

// loopTunnels stands for the reverse tunnel: each Dial is a loopback TCP
// connection (buffered both ways, as a tunnel channel is) whose other end
// an agent-like TLS server handshakes on and verifies, as dbagent does.
type loopTunnels struct {
	l            net.Listener
	serverConfig *tls.Config
	verify       func([]*x509.Certificate) error
}

func (p *loopTunnels) Dial(ctx context.Context, agentID string, extra []byte) (net.Conn, error) {
	proxyEnd, err := net.Dial("tcp", p.l.Addr().String())
	if err != nil {
		return nil, err
	}
	agentEnd, err := p.l.Accept()
	if err != nil {
		proxyEnd.Close()
		return nil, err
	}
	go func() {
		defer agentEnd.Close()
		tc := tls.Server(agentEnd, p.serverConfig)
		if err := tc.Handshake(); err != nil {
			return
		}
		if err := p.verify(tc.ConnectionState().PeerCertificates); err != nil {
			return
		}
		tc.Write([]byte{1}) // session accepted
	}()
	return proxyEnd, nil
}

// BenchmarkSessionHandshake measures what opening a session costs the
// proxy and the agent together (both ends of the mutual TLS inside the
// tunnel channel, and the agent's certificate check), for a session
// certificate signed anew each time (in process: the Auth service's round
// trip is not counted), cached, and cached with TLS session resumption.
func BenchmarkSessionHandshake(b *testing.B) {
	pki := newTestPKI(b)
	agentCert := signCert(b, pki.hostCA, ca.SignRequest{
		Identity: ca.Identity{Kind: ca.KindHost, ClusterName: "test", Username: "agent-1", Roles: []string{ca.SystemRoleDatabase}},
		TTL:      time.Hour,
		DNSNames: []string{"agent-1"},
	})
	user := signCert(b, pki.userCA, ca.SignRequest{
		Identity: ca.Identity{Kind: ca.KindUser, ClusterName: "test", Username: "alice", Roles: []string{"access"},
			Route: &ca.Route{ServiceName: "pg1", Protocol: "postgres", DBUser: "alice"}},
		TTL: time.Hour,
	})
	sign := func(ctx context.Context, userCert *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
		id, err := ca.IdentityFromCertificate(userCert)
		if err != nil {
			return nil, err
		}
		id.Kind = ca.KindSession
		return pki.hostCA.Sign(ca.SignRequest{PublicKey: pub, Identity: *id, TTL: 10 * time.Minute})
	}
	verifier := &ca.Verifier{Roots: []*x509.Certificate{pki.hostCA.Cert}, Kinds: []ca.CertKind{ca.KindSession},
		Usage: x509.ExtKeyUsageClientAuth, ClusterName: "test"}
	verify := func(chain []*x509.Certificate) error {
		_, err := verifier.Verify(chain)
		return err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for _, bc := range []struct {
		name            string
		signEachTime    bool
		ticketsDisabled bool
	}{
		{"signed-each-time", true, true},
		{"cached-cert", false, true},
		{"cached-cert-resumed", false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			clock := time.Now
			if bc.signEachTime {
				// Every cached certificate looks expired to the dispatcher.
				clock = func() time.Time { return time.Now().Add(24 * time.Hour) }
			}
			d := &proxy.Dispatcher{
				Tunnels: &loopTunnels{
					l: l,
					serverConfig: &tls.Config{
						MinVersion:             tls.VersionTLS12,
						Certificates:           []tls.Certificate{*agentCert},
						ClientAuth:             tls.RequireAnyClientCert,
						SessionTicketsDisabled: bc.ticketsDisabled,
					},
					verify: verify,
				},
				SignSession: sign,
				HostCAs:     func() []*x509.Certificate { return []*x509.Certificate{pki.hostCA.Cert} },
				Clock:       clock,
			}
			ctx := context.Background()
			open := func() error {
				conn, err := d.DialAgent(ctx, "agent-1", user.Leaf, protocol.SessionRequest{Type: protocol.SessionConnect})
				if err != nil {
					return err
				}
				defer conn.Close()
				var ok [1]byte
				if _, err := conn.Read(ok[:]); err != nil {
					return err
				}
				if bc.ticketsDisabled == conn.ConnectionState().DidResume {
					return errors.New("resumption is not as this case wants")
				}
				return nil
			}
			// The first session of a certificate cannot resume.
			if err := open(); err != nil && bc.ticketsDisabled {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := open(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
