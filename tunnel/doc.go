// Package tunnel is the SSH reverse tunnel between database agents and
// proxies: agents dial out to the proxy and the proxy opens a channel back to
// an agent for each session. It knows nothing about databases.
package tunnel
