// Package ca is the certificate authority of a Portcullis cluster: the user,
// host and database authorities, the Identity type and its encoding in X.509
// and SSH certificates, signing and verification.
package ca
