// Package ca is the certificate authority of a Portcullis cluster: the user,
// host and database authorities, the Identity type and its encoding in X.509
// and SSH certificates, signing and verification, and the PEM and key files
// around them. It imports only the standard library and golang.org/x/crypto.
//
// # Authorities
//
// A cluster has three authorities, each an [Authority] holding one ECDSA
// P-256 key pair and its self-signed certificate:
//
//   - [UserCA] signs people's certificates (KindUser), including the
//     route certificates that name one database.
//   - [HostCA] signs cluster components' certificates (KindHost: Auth
//     service, proxy, agents, the admin identity), the short-lived
//     proxy->agent session certificates (KindSession), and the SSH
//     certificates of the reverse tunnel.
//   - [DatabaseCA] signs database server certificates and the client
//     certificates agents present to databases; these carry no identity
//     extension.
//
// [NewAuthority] makes a CA certificate valid for ten years ([CAValidity])
// with CN "<cluster> <type> CA", O=<cluster>, IsCA, path length zero and key
// usage CertSign|CRLSign. [ParseAuthority] loads one back from PEM. Every
// certificate has a random 128-bit serial number. Time and randomness come
// from Authority.Clock and Authority.Rand, so tests control expiry. (Since Go
// 1.26 the standard library ignores custom randomness for key generation and
// ECDSA signatures; Rand still feeds serial numbers and SSH nonces.) The pin
// clients and agents check is [Fingerprint]: "sha256:<hex>" of the CA's
// SubjectPublicKeyInfo.
//
// # Identities and their encoding
//
// An [Identity] lives in an X.509 certificate as CN=Username and O=Roles,
// one RDN per role so that order survives DER, and one non-critical
// extension under [OIDIdentity], 2.25.1594013761.1, holding the rest: kind,
// cluster name, login IP, traits and the optional route (see
// [EncodeIdentityExtension] for the ASN.1). The arc under 2.25 is 31 bits,
// not a full 128-bit UUID, because Go's X.509 parser refuses certificates
// whose extension OIDs have an arc of 2^31 or more.
//
// The extension is versioned and decoding is strict: it refuses trailing
// bytes, unknown versions and kinds, invalid UTF-8, string types other than
// UTF8String, duplicate or unsorted trait names and anything over
// [MaxIdentityExtensionSize]; it re-encodes what it decoded and requires the
// same bytes, so each identity has exactly one encoding. The canonical form:
// empty Roles, Traits and trait value lists are nil; value order is kept.
// [IdentityFromCertificate] decodes a certificate's identity (without
// verifying it) and requires exactly one non-empty CN.
//
// # Lifetimes
//
// [Authority.Sign] refuses a zero or negative TTL, sets NotBefore one minute
// in the past for clock skew and NotAfter to the earliest of now+TTL,
// now+MaxTTL (the signer's policy cap), Identity.Expires and the CA's own
// NotAfter. Defaults for callers: user certificates 12h
// ([DefaultUserCertTTL]; a route certificate is no longer than the user
// certificate it comes from, so pass the user's expiry as Identity.Expires);
// host certificates 30 days ([DefaultHostCertTTL]; components renew early);
// session certificates 10 minutes ([DefaultSessionCertTTL]; the proxy caches
// them per identity and route); database client certificates 1h
// ([DefaultDatabaseClientCertTTL]; cached per db user); database server
// certificates 90 days ([DefaultDatabaseServerCertTTL]). Short lifetimes are
// the revocation mechanism: there are no CRLs.
//
// # Verification
//
// A [Verifier] checks a peer's chain against trusted roots (several during
// rotation) in a fixed order and returns a [*CertError] for the first
// failure: signature chain (a certificate from a foreign CA is
// ReasonUnknownAuthority even when it has also expired, because the chain is
// checked at a time inside the leaf's validity window), then validity at the
// Verifier's clock (ReasonExpired, ReasonNotYetValid), then the identity
// (ReasonBadIdentity), the kind, the extended key usage and the cluster.
// CertError.Error is one sentence a person can act on and holds no secrets;
// callers branch with [IsExpired], [IsUnknownAuthority], [IsBadIdentity] and
// friends. [Verifier.VerifyPeerCertificate] plugs into tls.Config.
//
// # SSH certificates
//
// The reverse tunnel authenticates with SSH certificates from the host CA
// ([Authority.SSHSigner], [Authority.SSHPublicKey]): [Authority.SignSSHHost]
// issues the proxy's host certificate (principals: host ID and the addresses
// agents dial) and [Authority.SignSSHAgent] an agent's user certificate
// (principal: its host ID; its system role in the [SSHRoleExtension]
// extension). Both are valid from one minute ago, for the TTL given, capped
// by the CA's NotAfter, with random serials; check them with
// ssh.CertChecker's IsHostAuthority and IsUserAuthority.
package ca
