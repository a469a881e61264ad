package auth

import (
	"container/list"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-db/portcullis/ca"
)

// chainCacheSize bounds how many verified certificate chains the service
// remembers: far more than the agents, proxies and people calling at one
// time, so that each verifies its chain once per certificate.
const chainCacheSize = 1024

// chainCache remembers the client certificate chains that verified, and
// the identity each carries, so that steady API traffic (an agent's audit
// Forwarder posts a batch every few hundred milliseconds) costs a SHA-256
// of the chain rather than a chain verification per call.
//
// An entry is used only while three things hold, checked on every use:
// the chain is byte for byte the one verified (the key is the SHA-256 of
// its DER); the cluster trusts the same authorities it was verified
// against; and the server's clock is inside the validity of every
// certificate involved (the chain's and the authorities'), where a new
// verification would pass too. Chains that fail are never remembered, so
// every refusal takes the full path and says why. The least recently used
// entry makes room for a new one beyond chainCacheSize.
type chainCache struct {
	mu      sync.Mutex
	max     int
	entries map[chainKey]*list.Element
	lru     *list.List // of *chainEntry, the most recently used at the front
	hits    uint64     // lookups answered, for tests
}

// chainKey identifies a presented chain: the SHA-256 of each
// certificate's DER, with its length.
type chainKey [sha256.Size]byte

// trustSet is what a chain was verified against: the certificates of the
// user and host authorities. Authorities are loaded once, so a changed
// authority is a new certificate (a different pointer).
type trustSet struct {
	user, host *x509.Certificate
}

type chainEntry struct {
	key       chainKey
	trust     trustSet
	id        *ca.Identity
	notBefore time.Time // the latest NotBefore of the chain and the authorities
	notAfter  time.Time // the earliest NotAfter of the same
}

func newChainCache(max int) *chainCache {
	return &chainCache{max: max, entries: make(map[chainKey]*list.Element), lru: list.New()}
}

func chainKeyOf(chain []*x509.Certificate) chainKey {
	h := sha256.New()
	for _, c := range chain {
		if c == nil {
			h.Write([]byte{0xff, 0xff, 0xff, 0xff}) // no DER is this long
			continue
		}
		writeDER(h, c.Raw)
	}
	var k chainKey
	h.Sum(k[:0])
	return k
}

// chainKeyOfDER is chainKeyOf for the DER of the certificates.
func chainKeyOfDER(ders [][]byte) chainKey {
	h := sha256.New()
	for _, der := range ders {
		writeDER(h, der)
	}
	var k chainKey
	h.Sum(k[:0])
	return k
}

func writeDER(h hash.Hash, der []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(der)))
	h.Write(n[:])
	h.Write(der)
}

// get returns a copy of the identity of a chain verified against trust
// and valid at now, or nil. An entry that no longer holds is dropped.
func (c *chainCache) get(key chainKey, trust trustSet, now time.Time) *ca.Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*chainEntry)
	if e.trust != trust || now.Before(e.notBefore) || now.After(e.notAfter) {
		c.lru.Remove(el)
		delete(c.entries, key)
		return nil
	}
	c.lru.MoveToFront(el)
	c.hits++
	return e.id.Clone() // no caller can change what the cache holds
}

// add remembers that chain, verified against trust, carries id.
func (c *chainCache) add(key chainKey, trust trustSet, chain []*x509.Certificate, id *ca.Identity) {
	e := &chainEntry{key: key, trust: trust, id: id.Clone()}
	first := true
	for _, cert := range append(slices.Clip(chain), trust.user, trust.host) {
		switch {
		case cert == nil:
			continue
		case first:
			e.notBefore, e.notAfter, first = cert.NotBefore, cert.NotAfter, false
		default:
			if cert.NotBefore.After(e.notBefore) {
				e.notBefore = cert.NotBefore
			}
			if cert.NotAfter.Before(e.notAfter) {
				e.notAfter = cert.NotAfter
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.entries[key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*chainEntry).key)
	}
}

// stats returns the number of entries and of lookups answered.
func (c *chainCache) stats() (entries int, hits uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.hits
}
