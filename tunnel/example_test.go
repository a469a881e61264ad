package tunnel_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"github.com/portcullis-db/portcullis/tunnel"
	"golang.org/x/crypto/ssh"
)

// sshCertSigner makes a key and has sign certify it.
func sshCertSigner(sign func(ssh.PublicKey) (*ssh.Certificate, error)) ssh.Signer {
	key, err := ca.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		log.Fatal(err)
	}
	cert, err := sign(signer.PublicKey())
	if err != nil {
		log.Fatal(err)
	}
	cs, err := ssh.NewCertSigner(cert, signer)
	if err != nil {
		log.Fatal(err)
	}
	return cs
}

// Example wires a proxy-side Server and an Agent through the cluster's host
// CA, then opens a session from the proxy to the agent.
func Example() {
	hostCA, err := ca.NewAuthority(ca.HostCA, "example", nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	caKey, err := hostCA.SSHPublicKey()
	if err != nil {
		log.Fatal(err)
	}

	// Proxy: host certificate naming its host ID and the host agents dial.
	srv := &tunnel.Server{
		HostSigner: sshCertSigner(func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return hostCA.SignSSHHost(pub, "proxy-1", []string{"proxy-1", "127.0.0.1"}, 24*time.Hour)
		}),
		CAKeys: []ssh.PublicKey{caKey},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	// Agent: user certificate with its host ID and the "Db" role.
	agent := &tunnel.Agent{
		ProxyAddrs: []string{l.Addr().String()},
		HostID:     "db-agent-1",
		Signer: sshCertSigner(func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return hostCA.SignSSHAgent(pub, "db-agent-1", ca.SystemRoleDatabase, time.Hour)
		}),
		HostCAKeys: []ssh.PublicKey{caKey},
		Metadata:   []byte(`{"databases":["pg1"]}`),
		Handler: func(ctx context.Context, conn net.Conn, extra []byte) {
			fmt.Fprintf(conn, "agent serving %s", extra)
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Wait until the agent has registered and advertised what it serves.
	for len(srv.Agents()) == 0 || srv.Agents()[0].Metadata == nil {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("agent %s advertises %s\n", srv.Agents()[0].ID, srv.Agents()[0].Metadata)

	conn, err := srv.Dial(context.Background(), "db-agent-1", []byte("pg1"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	reply, err := io.ReadAll(conn)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply))
	// Output:
	// agent db-agent-1 advertises {"databases":["pg1"]}
	// agent serving pg1
}
