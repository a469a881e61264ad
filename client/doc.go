// Package client is the user's side of a Portcullis cluster: the profile on
// disk, logging in, and database access (listing databases, route
// certificates, launching psql and mysql). pcl is built on it, and
// applications can embed it to log in and call the cluster's API as a
// person.
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
//	    db/<user>/<name>.crt          route certificate of database <name>
//	    db/<user>/<name>.json         its route: protocol, db user, db name
//
// [Profile.Logout] removes the user's key, certificate and route
// certificates and profile.json, and keeps the proxy's CAs so that the next
// login needs no pin.
//
// # Databases
//
// [Profile.Databases] lists the databases the user's roles let them see.
// [Profile.DatabaseLogin] gets a route certificate: the login's identity
// plus one route (database, protocol, db user, db name), signed for the
// login's key and never outliving the login. [Profile.DatabaseConfig] says
// how a client reaches the database through the proxy with it (the
// proxy's database listeners come from its ping, see
// [Profile.ProxySettings]); [DatabaseConfig.Command] is the psql or mysql
// command line and [DatabaseConfig.Env] the libpq environment.
// [Profile.DatabaseLogout] removes route certificates.
//
// A missing, expired or stale route certificate is a [*RouteError]
// (cured by DatabaseLogin); an expired login is a [*LoginExpiredError]
// (cured only by logging in). A db user or db name that was not given and
// cannot be picked from the login's db_users / db_names traits is a
// [*ChoiceError] listing the choices.
//
// # Errors
//
// [IsNotLoggedIn] tells that there is no profile; [IsUntrustedProxy] that
// the proxy could not be verified (wrong pin, or a CA that changed). Refusals
// from the cluster are [*authclient.Error] values whose message is one
// sentence for a person.
package client
