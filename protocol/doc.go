// Package protocol holds the wire-protocol engines in its sub-packages:
// PostgreSQL and MySQL handshakes, session relay and statement extraction for
// audit.
package protocol
