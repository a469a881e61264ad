package ca

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHRoleExtension is the SSH certificate extension in which SignSSHAgent
// puts the agent's system role.
const SSHRoleExtension = "system-role@portcullis"

// SSHSigner returns the host CA's key as an ssh.Signer (host CA only).
func (a *Authority) SSHSigner() (ssh.Signer, error) {
	if err := a.requireType(HostCA, "SSH certificates"); err != nil {
		return nil, err
	}
	if a.Signer == nil {
		return nil, errors.New("ca: the authority has no key; use NewAuthority or ParseAuthority")
	}
	s, err := ssh.NewSignerFromSigner(a.Signer)
	if err != nil {
		return nil, fmt.Errorf("ca: use the host CA key for SSH: %w", err)
	}
	return s, nil
}

// SSHPublicKey returns the host CA's public key in SSH form, for
// ssh.CertChecker's IsUserAuthority and IsHostAuthority (host CA only).
func (a *Authority) SSHPublicKey() (ssh.PublicKey, error) {
	s, err := a.SSHSigner()
	if err != nil {
		return nil, err
	}
	return s.PublicKey(), nil
}

// SignSSHHost issues the SSH host certificate of the proxy's tunnel server
// (host CA only): KeyId=hostID, ValidPrincipals=principals (the host ID and
// the addresses agents dial, without ports), valid from one minute ago for
// ttl (capped by the CA's NotAfter).
func (a *Authority) SignSSHHost(pub ssh.PublicKey, hostID string, principals []string, ttl time.Duration) (*ssh.Certificate, error) {
	if len(principals) == 0 {
		return nil, errors.New("ca: an SSH host certificate needs principals; pass the host ID and the addresses agents dial")
	}
	return a.signSSH(&ssh.Certificate{
		Key:             pub,
		CertType:        ssh.HostCert,
		KeyId:           hostID,
		ValidPrincipals: append([]string(nil), principals...),
	}, ttl)
}

// SignSSHAgent issues the SSH user certificate a database agent presents to
// the proxy's tunnel server (host CA only): KeyId=hostID,
// ValidPrincipals=[hostID] (so the agent logs in as its host ID), and
// Permissions.Extensions[SSHRoleExtension]=role.
func (a *Authority) SignSSHAgent(pub ssh.PublicKey, hostID, role string, ttl time.Duration) (*ssh.Certificate, error) {
	if err := checkName("system role", role); err != nil {
		return nil, err
	}
	return a.signSSH(&ssh.Certificate{
		Key:             pub,
		CertType:        ssh.UserCert,
		KeyId:           hostID,
		ValidPrincipals: []string{hostID},
		Permissions:     ssh.Permissions{Extensions: map[string]string{SSHRoleExtension: role}},
	}, ttl)
}

func (a *Authority) signSSH(cert *ssh.Certificate, ttl time.Duration) (*ssh.Certificate, error) {
	signer, err := a.SSHSigner()
	if err != nil {
		return nil, err
	}
	if cert.Key == nil {
		return nil, errors.New("ca: no SSH public key to sign; pass the subject's public key")
	}
	if err := checkName("host ID", cert.KeyId); err != nil {
		return nil, err
	}
	for _, p := range cert.ValidPrincipals {
		if err := checkName("principal", p); err != nil {
			return nil, err
		}
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("ca: certificate TTL %v is not positive; request a lifetime such as %v", ttl, DefaultHostCertTTL)
	}
	now := a.now()
	notAfter, err := a.capNotAfter(now, now.Add(ttl))
	if err != nil {
		return nil, err
	}
	if notAfter.Unix() <= now.Unix() {
		return nil, fmt.Errorf("ca: the SSH certificate for %s would expire at once; request a TTL of at least a few seconds", cert.KeyId)
	}
	var serial [8]byte
	if _, err := io.ReadFull(a.rand(), serial[:]); err != nil {
		return nil, fmt.Errorf("ca: read random serial number: %w", err)
	}
	cert.Serial = binary.BigEndian.Uint64(serial[:])
	cert.ValidAfter = uint64(now.Add(-clockSkew).Unix())
	cert.ValidBefore = uint64(notAfter.Unix())
	if err := cert.SignCert(a.rand(), signer); err != nil {
		return nil, fmt.Errorf("ca: sign SSH certificate for %s: %w", cert.KeyId, err)
	}
	return cert, nil
}
