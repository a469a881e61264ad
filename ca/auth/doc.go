// Package auth is the Auth service of a Portcullis cluster: it holds the
// certificate authorities, users, roles, join tokens, locks and the live
// inventory of databases, and serves an HTTPS JSON API over mutual TLS.
//
// # Bootstrapping
//
// [New] loads the cluster from its storage backend. On first start it
// creates the cluster name, the three authorities (user, host, database)
// and the preset roles (access, editor, auditor). The CA private keys live in
// the storage backend, which for the embedded default is one 0600 file in the
// data dir. [Server.WriteAdminIdentity] writes the identity that pctl uses on
// the Auth host.
//
// # Who may call what
//
// Every call but ping, CA export, login, sign-up and join must present a
// certificate. People present user certificates: their roles, read from
// storage on each call, decide what they may do through the roles' rules.
// Cluster components present host certificates whose system role decides:
// Admin may do everything, Proxy may sign session certificates and read the
// inventory, Db may heartbeat its databases and get database client
// certificates. Locks are checked on every call and before every
// certificate is signed.
//
// A certificate chain is verified on its first call and then remembered
// (bounded, least recently used first out), so that steady traffic from
// agents and proxies costs no signature checks; every call still checks
// the remembered chain's validity against the service's clock, and a
// chain is remembered only while the authorities it was verified against
// are the cluster's.
//
// # Logins
//
// Passwords are bcrypt hashes; a user may add TOTP. A wrong password, an
// unknown user, a user still waiting for sign-up and a wrong one-time code
// all get the same answer, after the same bcrypt work. Failed logins are
// limited per username and per source address.
//
// # Errors
//
// Refusals are JSON objects {"error": {"code", "message"}}, see
// [authclient.Error]; the message is one sentence for a person and never
// carries a secret or says whether a user exists.
package auth
