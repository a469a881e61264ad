package ca

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func sshKey(t *testing.T) (ssh.Signer, ssh.PublicKey) {
	t.Helper()
	s, err := ssh.NewSignerFromSigner(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, s.PublicKey()
}

func TestSignSSHCertificates(t *testing.T) {
	clock := &testClock{t: testNow}
	host := newTestAuthority(t, HostCA, "example", clock.Now)
	caPub, err := host.SSHPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if caPub.Type() != ssh.KeyAlgoECDSA256 {
		t.Fatalf("CA SSH key type %s", caPub.Type())
	}
	isCA := func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), caPub.Marshal()) }
	checker := &ssh.CertChecker{IsUserAuthority: isCA, IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return isCA(auth) }, Clock: clock.Now}

	_, proxyPub := sshKey(t)
	hostCert, err := host.SignSSHHost(proxyPub, "proxy-1", []string{"proxy-1", "proxy.example.com", "127.0.0.1"}, DefaultHostCertTTL)
	if err != nil {
		t.Fatal(err)
	}
	if hostCert.CertType != ssh.HostCert || hostCert.KeyId != "proxy-1" ||
		hostCert.ValidAfter != uint64(testNow.Add(-time.Minute).Unix()) || hostCert.ValidBefore != uint64(testNow.Add(DefaultHostCertTTL).Unix()) {
		t.Fatalf("host cert %+v", hostCert)
	}
	if err := checker.CheckHostKey("proxy.example.com:3024", &net.TCPAddr{}, hostCert); err != nil {
		t.Fatalf("host cert refused: %v", err)
	}
	if err := checker.CheckHostKey("evil.example.com:3024", &net.TCPAddr{}, hostCert); err == nil {
		t.Fatal("host cert accepted for an address it does not name")
	}

	_, agentPub := sshKey(t)
	agentCert, err := host.SignSSHAgent(agentPub, "agent-7", SystemRoleDatabase, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if agentCert.CertType != ssh.UserCert || agentCert.KeyId != "agent-7" || len(agentCert.ValidPrincipals) != 1 ||
		agentCert.Permissions.Extensions[SSHRoleExtension] != SystemRoleDatabase {
		t.Fatalf("agent cert %+v", agentCert)
	}
	perms, err := checker.Authenticate(connMeta("agent-7"), agentCert)
	if err != nil {
		t.Fatalf("agent cert refused: %v", err)
	}
	if perms.Extensions["system-role@portcullis"] != "Db" {
		t.Fatalf("permissions %+v", perms)
	}
	if _, err := checker.Authenticate(connMeta("agent-8"), agentCert); err == nil {
		t.Fatal("agent cert accepted for another principal")
	}
	if hostCert.Serial == agentCert.Serial {
		t.Error("two SSH certificates share a serial")
	}

	// Expiry is judged by the checker's clock.
	clock.Advance(2 * time.Hour)
	if _, err := checker.Authenticate(connMeta("agent-7"), agentCert); err == nil {
		t.Fatal("expired agent cert accepted")
	}

	// A certificate from another host CA is refused.
	other := newTestAuthority(t, HostCA, "example", clock.Now)
	foreign, err := other.SignSSHAgent(agentPub, "agent-7", SystemRoleDatabase, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := checker.Authenticate(connMeta("agent-7"), foreign); err == nil {
		t.Fatal("foreign agent cert accepted")
	}
}

func TestSignSSHRefuses(t *testing.T) {
	clock := &testClock{t: testNow}
	host := newTestAuthority(t, HostCA, "example", clock.Now)
	user := newTestAuthority(t, UserCA, "example", clock.Now)
	_, pub := sshKey(t)
	if _, err := user.SSHSigner(); err == nil || !strings.Contains(err.Error(), "host CA") {
		t.Errorf("user CA SSH signer: %v", err)
	}
	if _, err := user.SignSSHAgent(pub, "a", SystemRoleDatabase, time.Hour); err == nil {
		t.Error("user CA signed an SSH cert")
	}
	for name, f := range map[string]func() error{
		"zero TTL":      func() error { _, err := host.SignSSHAgent(pub, "a", SystemRoleDatabase, 0); return err },
		"no host ID":    func() error { _, err := host.SignSSHAgent(pub, "", SystemRoleDatabase, time.Hour); return err },
		"no role":       func() error { _, err := host.SignSSHAgent(pub, "a", "", time.Hour); return err },
		"no key":        func() error { _, err := host.SignSSHAgent(nil, "a", SystemRoleDatabase, time.Hour); return err },
		"no principals": func() error { _, err := host.SignSSHHost(pub, "a", nil, time.Hour); return err },
	} {
		if err := f(); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	// Capped by the CA's NotAfter.
	clock.t = host.Cert.NotAfter.Add(-time.Hour)
	c, err := host.SignSSHHost(pub, "p", []string{"p"}, DefaultHostCertTTL)
	if err != nil {
		t.Fatal(err)
	}
	if c.ValidBefore != uint64(host.Cert.NotAfter.Unix()) {
		t.Errorf("ValidBefore %d, want the CA's NotAfter %d", c.ValidBefore, host.Cert.NotAfter.Unix())
	}
}

// A real SSH handshake on loopback: the agent trusts the proxy's host
// certificate and the proxy authenticates the agent's user certificate and
// sees its role, as the tunnel does.
func TestSSHHandshake(t *testing.T) {
	host := newTestAuthority(t, HostCA, "example", nil)
	caPub, err := host.SSHPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	isCA := func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), caPub.Marshal()) }

	proxyKey, proxyPub := sshKey(t)
	hostCert, err := host.SignSSHHost(proxyPub, "proxy-1", []string{"proxy-1", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	proxySigner, err := ssh.NewCertSigner(hostCert, proxyKey)
	if err != nil {
		t.Fatal(err)
	}
	agentKey, agentPub := sshKey(t)
	agentCert, err := host.SignSSHAgent(agentPub, "agent-7", SystemRoleDatabase, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	agentSigner, err := ssh.NewCertSigner(agentCert, agentKey)
	if err != nil {
		t.Fatal(err)
	}

	serverChecker := &ssh.CertChecker{IsUserAuthority: isCA}
	cfg := &ssh.ServerConfig{PublicKeyCallback: serverChecker.Authenticate}
	cfg.AddHostKey(proxySigner)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		role string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err != nil {
			done <- result{err: err}
			return
		}
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				ch.Reject(ssh.Prohibited, "no channels")
			}
		}()
		done <- result{role: sc.Permissions.Extensions[SSHRoleExtension]}
		sc.Wait()
	}()

	clientChecker := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool { return isCA(auth) }}
	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:              "agent-7",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(agentSigner)},
		HostKeyCallback:   clientChecker.CheckHostKey,
		HostKeyAlgorithms: []string{ssh.CertAlgoECDSA256v01},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	client.Close()
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.role != SystemRoleDatabase {
		t.Fatalf("server saw role %q, want %q", r.role, SystemRoleDatabase)
	}
}

type connMeta string

func (c connMeta) User() string        { return string(c) }
func (connMeta) SessionID() []byte     { return nil }
func (connMeta) ClientVersion() []byte { return nil }
func (connMeta) ServerVersion() []byte { return nil }
func (connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{} }
func (connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{} }
