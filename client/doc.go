// Package client is the user's side of a Portcullis cluster: the profile on
// disk and logging in. pcl is built on it, and applications can embed it
// to log in and call the cluster's API as a person.
//
// # Logging in
//
// [Login] makes a new ECDSA P-256 key pair locally, sends only the public
// key with the user's password (and one-time code) to the proxy, and stores
// the user certificate the Auth service signs for it. The private key never
// leaves the machine. Each login makes a fresh key.
//
// The first contact with a cluster cannot verify the proxy against a CA
// the client does not have yet. The caller passes the host CA's pin (the
// sha256:... fingerprint that `pctl status` prints) and the connection is
// accepted only if the proxy's chain contains that CA; or it passes
// Insecure to skip verification on a test cluster. The host CAs that come
// back with the certificate are stored, so later logins to the same proxy
// verify it with them and need neither. The order of trust is: an explicit
// pin, an explicit Insecure, the stored host CAs, the pin remembered in
// profile.json.
//
// [Signup] sets a new user's password with the one-time token an
// administrator handed out (`pctl users add`), optionally enrolling an
// authenticator app for TOTP.
//
// # Profile directory
//
// The profile lives in $PORTCULLIS_HOME, by default ~/.portcullis (see
// [DefaultHome]). Directories are created 0700 and every file is written
// 0600, atomically:
//
//	$PORTCULLIS_HOME/
//	  profile.json                    the current login: proxy address, user,
//	                                  cluster, roles, traits, expiry, CA pin
//	  keys/<proxy>/                   <proxy> is host:port with every byte other
//	                                  than [a-z0-9.-] replaced by "_",
//	                                  e.g. proxy.example.com_3080
//	    <user>.key                    the private key, PKCS#8 PEM
//	    <user>.crt                    the user certificate, PEM
//	    host-cas.pem                  host CAs: verify the proxy and Auth service
//	    user-cas.pem                  user CAs
//	    db/<user>/<name>.crt          route certificates per database (reserved)
//
// [Profile.Logout] removes the user's key, certificate and route
// certificates and profile.json, and keeps the proxy's CAs so that the next
// login needs no pin.
//
// # Errors
//
// [IsNotLoggedIn] tells that there is no profile; [IsUntrustedProxy] that
// the proxy could not be verified (wrong pin, or a CA that changed). Refusals
// from the cluster are [*authclient.Error] values whose message is one
// sentence for a person.
package client
