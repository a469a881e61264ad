// Package portcullis is the root of the Portcullis SDK: identity-aware access
// to PostgreSQL and MySQL/MariaDB databases, as packages that an existing Go
// service can import.
//
// # Architecture
//
// People and programs never hold database passwords. They log in once and get
// a short-lived X.509 certificate from the cluster's certificate authority
// (package ca and its Auth service, ca/auth). Database clients connect to a
// stateless proxy (package proxy), the only public endpoint, which checks the
// certificate and dispatches the connection over an SSH reverse tunnel
// (package tunnel) to a database agent (package dbagent) running next to the
// database behind a firewall. The agent authorizes the session against the
// user's roles (ca/policy), connects to the database with a short-lived
// client certificate or an IAM token, and relays traffic while its protocol
// engine (package protocol) writes every statement to the audit log (package
// audit) under the real person's name.
//
//	pcl / app (client, client/database)
//	      | TLS, user certificate (identity + route)
//	      v
//	    proxy  --- HTTPS/mTLS --->  Auth service (ca/auth): CA, users, roles, locks, inventory
//	      ^
//	      | SSH reverse tunnel, dialed by the agent; one channel per session,
//	      | mTLS inside it with a short-lived session certificate
//	      v
//	  db agent --- TLS client cert / IAM token --->  PostgreSQL, MySQL, MariaDB
//
// Each hop authenticates with a short-lived certificate: client to proxy,
// proxy to agent, agent to database.
//
// # Packages
//
//   - ca: authorities, identities, signing and verification; sub-packages hold
//     the Auth service (ca/auth), its Go client (ca/authclient), state storage
//     (ca/storage) and access policy (ca/policy).
//   - tunnel: the agent and proxy ends of the reverse tunnel.
//   - proxy: listeners, TLS/ALPN routing, certificate checks and dispatch.
//   - dbagent: authorization, upstream credentials, session controls.
//   - protocol: PostgreSQL and MySQL wire-protocol engines.
//   - audit: event types, the Emitter interface and sinks.
//   - client: the user's profile, login and database access; client/database
//     dials databases from Go applications.
//
// The binaries in cmd (portcullis, pctl, pcl) only assemble these packages.
package portcullis
