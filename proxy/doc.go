// Package proxy is the stateless gateway of a Portcullis cluster: it
// terminates TLS from database clients, checks their certificates and
// dispatches each connection over the reverse tunnel to an agent that serves
// the requested database.
package proxy
