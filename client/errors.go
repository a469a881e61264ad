package client

import (
	"errors"
	"fmt"
)

// NotLoggedInError says there is no profile in Home.
type NotLoggedInError struct {
	Home string
}

func (e *NotLoggedInError) Error() string {
	return fmt.Sprintf("not logged in (no profile in %s); log in with pcl login --proxy HOST:PORT --user NAME", e.Home)
}

// IsNotLoggedIn reports whether err says there is no profile.
func IsNotLoggedIn(err error) bool {
	var e *NotLoggedInError
	return errors.As(err, &e)
}

// UntrustedProxyError says the proxy's TLS certificate did not verify: a
// CA pin that does not match, or stored host CAs that no longer sign it.
type UntrustedProxyError struct {
	ProxyAddr string
	// Pinned is true when the proxy was checked against a CA pin, false
	// when against the stored host CAs.
	Pinned bool
	Err    error
}

func (e *UntrustedProxyError) Error() string {
	if e.Pinned {
		return fmt.Sprintf("cannot trust the proxy at %s: %v", e.ProxyAddr, e.Err)
	}
	return fmt.Sprintf("cannot trust the proxy at %s: its certificate does not verify against the cluster's host CA stored from an earlier login (%v); "+
		"if the cluster's CA changed, log in again with --ca-pin from `pctl status`", e.ProxyAddr, e.Err)
}

func (e *UntrustedProxyError) Unwrap() error { return e.Err }

// IsUntrustedProxy reports whether err says the proxy could not be verified.
func IsUntrustedProxy(err error) bool {
	var e *UntrustedProxyError
	return errors.As(err, &e)
}
