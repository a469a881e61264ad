// Package authclient is the Go client of the Auth service's HTTPS API and
// the wire types it speaks. It depends only on the standard library and the
// ca packages, so the user's client, the proxy and the agent can all import
// it without pulling in the Auth service itself.
//
// # Transport
//
// The API is JSON over HTTPS with mutual TLS. Callers that already hold a
// certificate present it (users: a user certificate; cluster components: a
// host certificate). Login, sign-up and joining are the only calls made
// without one: they are how a certificate is obtained in the first place.
// The server certificate is verified against the cluster's host CA; a caller
// that has no copy of that CA yet pins its fingerprint (see [PinnedTLSConfig]).
//
// # Errors
//
// Every refusal arrives as an [*Error] carrying an HTTP status, a stable code
// and one sentence for a person. [IsAccessDenied], [IsNotFound] and friends
// branch on the code.
package authclient
