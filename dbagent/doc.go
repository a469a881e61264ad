// Package dbagent is the database service: it accepts sessions over the
// reverse tunnel, authorizes them, connects to the database with short-lived
// credentials and relays traffic while auditing every statement.
package dbagent
