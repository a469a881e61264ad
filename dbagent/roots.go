package dbagent

import (
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/portcullis-db/portcullis/ca/hostcert"
)

// rootsCache keeps, per database, the pool of CAs its server certificate
// is verified against, so that a session neither reads nor parses them
// again. A database's tls.ca_file is read again when its size or
// modification time changes, so a replaced file is used from the next
// session on; the cluster's database CAs are taken again when the agent's
// credentials change (a renewal brings the current CAs).
type rootsCache struct {
	mu sync.Mutex
	m  map[string]*rootsEntry // by database name
}

type rootsEntry struct {
	// What the pool was made from: the file and its size and modification
	// time, or the credentials.
	file  string
	size  int64
	mod   time.Time
	creds *hostcert.Credentials

	pool *x509.CertPool
}

// roots returns the pool for db, from its CA file or else creds' DBCAs.
func (c *rootsCache) roots(db *Database, creds *hostcert.Credentials) (*x509.CertPool, error) {
	var (
		size int64
		mod  time.Time
	)
	if db.TLS.CAFile != "" {
		fi, err := os.Stat(db.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading tls.ca_file of database %s: %w", db.Name, err)
		}
		size, mod = fi.Size(), fi.ModTime()
	}
	c.mu.Lock()
	e := c.m[db.Name]
	c.mu.Unlock()
	if e != nil && e.file == db.TLS.CAFile {
		if db.TLS.CAFile != "" && e.size == size && e.mod.Equal(mod) {
			return e.pool, nil
		}
		if db.TLS.CAFile == "" && e.creds == creds {
			return e.pool, nil
		}
	}

	e = &rootsEntry{file: db.TLS.CAFile, size: size, mod: mod, pool: x509.NewCertPool()}
	if db.TLS.CAFile != "" {
		pem, err := os.ReadFile(db.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading tls.ca_file of database %s: %w", db.Name, err)
		}
		if !e.pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file of database %s holds no certificate", db.Name)
		}
	} else {
		e.creds = creds
		for _, ca := range creds.DBCAs {
			e.pool.AddCert(ca)
		}
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*rootsEntry)
	}
	c.m[db.Name] = e
	c.mu.Unlock()
	return e.pool, nil
}
