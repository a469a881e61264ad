package boltstore

import (
	"bytes"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, c := range []struct {
		rev     int64
		expires time.Time
		value   []byte
	}{
		{1, time.Time{}, nil},
		{2, time.Time{}, []byte("value")},
		{1<<63 - 1, time.Date(2026, 11, 23, 20, 0, 0, 123456789, time.UTC), []byte{0, 1, 2}},
		{7, time.Date(1900, 1, 1, 0, 0, 0, 1, time.FixedZone("X", 3600)), []byte("old")},
		{8, time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), nil},
	} {
		b := encodeEnvelope(c.rev, c.expires, c.value)
		e, err := decodeEnvelope(b)
		if err != nil {
			t.Fatalf("decode(encode(%d, %v)): %v", c.rev, c.expires, err)
		}
		if e.revision != c.rev || !e.expires.Equal(c.expires) || !bytes.Equal(e.value, c.value) {
			t.Fatalf("round trip: got %d %v %q, want %d %v %q", e.revision, e.expires, e.value, c.rev, c.expires, c.value)
		}
		if !c.expires.IsZero() && e.expires.Location() != time.UTC {
			t.Fatalf("decoded expiry in %v, want UTC", e.expires.Location())
		}
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	good := encodeEnvelope(5, time.Unix(100, 5), []byte("v"))
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	for name, b := range map[string][]byte{
		"empty":            nil,
		"short":            good[:envelopeHeaderSize-1],
		"unknown format":   mutate(func(b []byte) { b[0] = 9 }),
		"unknown flag":     mutate(func(b []byte) { b[1] |= 0x80 }),
		"zero revision":    encodeEnvelope(0, time.Time{}, nil),
		"negative rev":     encodeEnvelope(-1, time.Time{}, nil),
		"nanos too large":  mutate(func(b []byte) { b[18] = 0xff }),
		"expiry unflagged": mutate(func(b []byte) { b[1] = 0 }),
	} {
		if _, err := decodeEnvelope(b); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestExpiryKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), // before the epoch: negative seconds
		time.Unix(0, 0),
		time.Unix(0, 1),
		time.Unix(1, 0),
		time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 23, 20, 0, 0, 1, time.UTC),
	}
	for i := 1; i < len(times); i++ {
		a, b := expiryKey(times[i-1], "zzz"), expiryKey(times[i], "aaa")
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("index key for %v does not sort before %v", times[i-1], times[i])
		}
	}
	for _, tm := range times {
		got, key, err := expiryTime(expiryKey(tm, "users/a"))
		if err != nil || !got.Equal(tm) || key != "users/a" {
			t.Errorf("expiryTime(expiryKey(%v)) = %v, %q, %v", tm, got, key, err)
		}
	}
}

// FuzzDecodeEnvelope checks that decoding never panics and that whatever
// decodes re-encodes to the same bytes.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(encodeEnvelope(1, time.Time{}, nil))
	f.Add(encodeEnvelope(42, time.Date(2026, 11, 23, 20, 0, 0, 5, time.UTC), []byte("value")))
	f.Add([]byte{envelopeFormat})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if again := encodeEnvelope(e.revision, e.expires, e.value); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}

func FuzzExpiryTime(f *testing.F) {
	f.Add(expiryKey(time.Unix(100, 5), "inventory/db/h/pg"))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, key, err := expiryTime(b)
		if err != nil {
			return
		}
		if again := expiryKey(tm, key); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}
