package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PEM block types.
const (
	pemCertificate  = "CERTIFICATE"
	pemPrivateKey   = "PRIVATE KEY"    // PKCS#8
	pemECPrivateKey = "EC PRIVATE KEY" // SEC1, read only
)

// GenerateKey returns a new ECDSA P-256 private key from crypto/rand.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate P-256 key: %w", err)
	}
	return k, nil
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block.
// Keys that cannot be exported (e.g. held in hardware) are refused.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	if key == nil {
		return nil, errors.New("ca: no private key to encode")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: a %T key cannot be written as PKCS#8; use an ECDSA P-256 key", key)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParsePrivateKeyPEM decodes the first private key PEM block: PKCS#8
// "PRIVATE KEY" (what this package writes) or SEC1 "EC PRIVATE KEY".
// Encrypted keys are not supported.
func ParsePrivateKeyPEM(pemBytes []byte) (crypto.Signer, error) {
	rest := pemBytes
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("ca: no PRIVATE KEY PEM block found; pass a PEM private key file")
		}
		if (b.Type == pemPrivateKey || b.Type == pemECPrivateKey) && len(b.Headers) != 0 {
			return nil, errors.New("ca: the private key is encrypted; pass an unencrypted key")
		}
		switch b.Type {
		case pemPrivateKey:
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("ca: the PKCS#8 private key cannot be parsed (%v); pass a valid key", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("ca: a %T private key cannot sign; use an ECDSA P-256 key", k)
			}
			return s, nil
		case pemECPrivateKey:
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("ca: the EC private key cannot be parsed (%v); pass a valid key", err)
			}
			return k, nil
		}
	}
}

// EncodeCertPEM encodes a DER certificate as a "CERTIFICATE" PEM block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

// ParseCertPEM parses the first "CERTIFICATE" PEM block, skipping blocks of
// other types.
func ParseCertPEM(pemBytes []byte) (*x509.Certificate, error) {
	rest := pemBytes
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("ca: no CERTIFICATE PEM block found; pass a PEM certificate file")
		}
		if b.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: the certificate cannot be parsed (%v); pass a valid certificate", err)
		}
		return c, nil
	}
}

// ParseCertsPEM parses every "CERTIFICATE" PEM block, in order, skipping
// blocks of other types. It fails if there is none or one does not parse.
func ParseCertsPEM(pemBytes []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemBytes
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != pemCertificate {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: certificate %d cannot be parsed (%v); pass valid certificates", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("ca: no CERTIFICATE PEM block found; pass a PEM certificate file")
	}
	return certs, nil
}

// WriteFileAtomic writes data to path so that readers see the old contents
// or the new, never a mix: it writes a temporary file in the same directory
// with mode perm, syncs it, renames it over path and syncs the directory.
// Use 0600 for private keys.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Chmod before writing so that a key is never readable by others, even
	// briefly (CreateTemp makes 0600; perm may be wider for certificates).
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ca: write %s: %w", path, err)
	}
	// Make the rename itself durable. Not every platform can sync a
	// directory; the file is in place either way.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// WriteDatabaseServerFiles writes what a database server needs for TLS
// client-certificate authentication: PREFIX.crt (the server certificate,
// PEM, 0644), PREFIX.key (its private key, PKCS#8 PEM, 0600) and PREFIX.cas
// (the database CA certificates the server trusts for client certificates,
// PEM, 0644). It checks that key belongs to the certificate.
func WriteDatabaseServerFiles(prefix string, certDER []byte, key crypto.Signer, caCerts []*x509.Certificate) error {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("ca: the database server certificate cannot be parsed (%v); pass the DER certificate", err)
	}
	if key == nil || !publicKeysEqual(cert.PublicKey, key.Public()) {
		return errors.New("ca: the private key does not belong to the database server certificate; pass the matching key")
	}
	if len(caCerts) == 0 {
		return errors.New("ca: no CA certificates for the database server to trust; pass the database CA certificate")
	}
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	var cas []byte
	for _, c := range caCerts {
		if c == nil {
			return errors.New("ca: a CA certificate is nil; pass the database CA certificates")
		}
		cas = append(cas, EncodeCertPEM(c.Raw)...)
	}
	if err := WriteFileAtomic(prefix+".key", keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteFileAtomic(prefix+".crt", EncodeCertPEM(certDER), 0o644); err != nil {
		return err
	}
	return WriteFileAtomic(prefix+".cas", cas, 0o644)
}
