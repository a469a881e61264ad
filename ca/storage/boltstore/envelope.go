package boltstore

import (
	"encoding/binary"
	"fmt"
	"time"
)

// The envelope is how an item is stored under its key in the "items" bucket:
//
//	offset size
//	0      1    format (envelopeFormat)
//	1      1    flags (flagExpires)
//	2      8    revision, big-endian uint64
//	10     8    expiry seconds since the Unix epoch, big-endian int64
//	18     4    expiry nanoseconds, big-endian uint32 (< 1e9)
//	22     -    value
//
// Seconds and nanoseconds, rather than UnixNano, so that any time.Time
// round-trips exactly.
const (
	envelopeFormat     = 1
	envelopeHeaderSize = 22

	flagExpires = 1 << 0
)

// envelope is a decoded item without its key.
type envelope struct {
	revision int64
	expires  time.Time // zero: never
	value    []byte    // aliases the input of decodeEnvelope
}

func encodeEnvelope(revision int64, expires time.Time, value []byte) []byte {
	b := make([]byte, envelopeHeaderSize, envelopeHeaderSize+len(value))
	b[0] = envelopeFormat
	if !expires.IsZero() {
		b[1] = flagExpires
		binary.BigEndian.PutUint64(b[10:18], uint64(expires.Unix()))
		binary.BigEndian.PutUint32(b[18:22], uint32(expires.Nanosecond()))
	}
	binary.BigEndian.PutUint64(b[2:10], uint64(revision))
	return append(b, value...)
}

// decodeEnvelope parses b. The returned value aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < envelopeHeaderSize {
		return envelope{}, fmt.Errorf("envelope is %d bytes, shorter than its %d-byte header", len(b), envelopeHeaderSize)
	}
	if b[0] != envelopeFormat {
		return envelope{}, fmt.Errorf("envelope format %d is unknown (this build reads format %d)", b[0], envelopeFormat)
	}
	if b[1]&^flagExpires != 0 {
		return envelope{}, fmt.Errorf("envelope flags %#x are unknown", b[1])
	}
	rev := binary.BigEndian.Uint64(b[2:10])
	if rev == 0 || rev > 1<<63-1 {
		return envelope{}, fmt.Errorf("envelope revision %d is out of range", rev)
	}
	e := envelope{revision: int64(rev), value: b[envelopeHeaderSize:]}
	sec := int64(binary.BigEndian.Uint64(b[10:18]))
	nsec := binary.BigEndian.Uint32(b[18:22])
	if b[1]&flagExpires != 0 {
		if nsec >= 1e9 {
			return envelope{}, fmt.Errorf("envelope expiry nanoseconds %d are out of range", nsec)
		}
		e.expires = time.Unix(sec, int64(nsec)).UTC()
	} else if sec != 0 || nsec != 0 {
		return envelope{}, fmt.Errorf("envelope has an expiry time but no expiry flag")
	}
	return e, nil
}

// live reports whether an item with expiry expires is visible at now.
func live(expires, now time.Time) bool {
	return expires.IsZero() || now.Before(expires)
}

// expiryKey is the key of the "expiry" index entry for an item: the expiry
// time encoded so that byte order is time order (seconds with the sign bit
// flipped, then nanoseconds), followed by the item's key.
func expiryKey(expires time.Time, key string) []byte {
	b := make([]byte, 12, 12+len(key))
	binary.BigEndian.PutUint64(b[0:8], uint64(expires.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:12], uint32(expires.Nanosecond()))
	return append(b, key...)
}

// expiryTime decodes an "expiry" index key into the expiry time and the
// item's key.
func expiryTime(indexKey []byte) (time.Time, string, error) {
	if len(indexKey) < 12 {
		return time.Time{}, "", fmt.Errorf("expiry index key is %d bytes, shorter than 12", len(indexKey))
	}
	sec := int64(binary.BigEndian.Uint64(indexKey[0:8]) ^ (1 << 63))
	nsec := binary.BigEndian.Uint32(indexKey[8:12])
	if nsec >= 1e9 {
		return time.Time{}, "", fmt.Errorf("expiry index nanoseconds %d are out of range", nsec)
	}
	return time.Unix(sec, int64(nsec)).UTC(), string(indexKey[12:]), nil
}
