package postgres

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"reflect"
	"runtime"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/audit"
)

// countingEmitter counts events and renders each as JSON, as a real sink
// would, so that the fuzzer also exercises the events' encoding.
type countingEmitter struct{ n int }

func (c *countingEmitter) EmitAuditEvent(_ context.Context, e audit.Event) error {
	c.n++
	_, err := audit.MarshalEvent(e)
	return err
}

// relaySeeds are client streams: the messages pgx and psql send, and some
// broken ones.
func relaySeeds(t testing.TB) [][]byte {
	var huge [5]byte
	huge[0] = 'Q'
	binary.BigEndian.PutUint32(huge[1:], 0x7fffffff)
	return [][]byte{
		concat(t, &pgproto3.Query{String: "select 1"}, &pgproto3.Terminate{}),
		concat(t,
			&pgproto3.Parse{Name: "s", Query: "select $1::int4, $2::text", ParameterOIDs: []uint32{23, 25}},
			&pgproto3.Describe{ObjectType: 'S', Name: "s"},
			&pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s", ParameterFormatCodes: []int16{1, 0}, Parameters: [][]byte{{0, 0, 0, 1}, []byte("x")}, ResultFormatCodes: []int16{1}},
			&pgproto3.Execute{MaxRows: 5},
			&pgproto3.Close{ObjectType: 'S', Name: "s"},
			&pgproto3.Sync{},
		),
		concat(t, &pgproto3.Query{String: "copy t from stdin"}, &pgproto3.CopyData{Data: []byte("1\tx\n")}, &pgproto3.CopyDone{}),
		concat(t, &pgproto3.FunctionCall{Function: 1598, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{{0, 0, 64, 0}, nil}, ResultFormatCode: 1}),
		huge[:],
		{'B', 0, 0, 0, 10, 0, 0, 0xff, 0xff, 0, 0},
		{'Q', 0, 0, 0, 1},
	}
}

// FuzzRelayClientMessages feeds an arbitrary client stream to a Relay
// whose server only records. The relay must not panic, must forward
// nothing but a prefix of the stream (plus a Terminate of its own), and
// must allocate in proportion to the bytes it was sent, not to the sizes
// their headers claim.
func FuzzRelayClientMessages(f *testing.F) {
	for _, s := range relaySeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		client, server := newMemConn(false), newMemConn(true)
		client.send(stream)
		client.endInput()
		em := &countingEmitter{}
		r := &Relay{Client: client, Server: server, Emitter: em, QueryLimit: 1 << 10, ParamLimit: 64}

		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		stats, err := r.Run(context.Background())
		runtime.ReadMemStats(&after)

		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20+64*uint64(len(stream)) {
			t.Errorf("relaying %d bytes allocated %d bytes", len(stream), alloc)
		}
		if stats.BytesFromClient > int64(len(stream)) {
			t.Errorf("counted %d bytes from a %d-byte stream", stats.BytesFromClient, len(stream))
		}
		out, _ := server.written()
		terminate := []byte{'X', 0, 0, 0, 4}
		if !bytes.HasPrefix(stream, out) && !(bytes.HasSuffix(out, terminate) && bytes.HasPrefix(stream, out[:len(out)-5])) {
			t.Errorf("server got bytes that the client did not send:\n got %q\nfrom %q", out, stream)
		}
		if IsMessageRefused(err) {
			got, _ := client.written()
			if msgs := readBackendMessages(t, got); len(msgs) != 1 {
				t.Errorf("refused with %v but the client got %d messages", err, len(msgs))
			}
		}
	})
}

// FuzzReadStartup reads arbitrary bytes as a client's first message. It
// must not panic, must consume exactly the message it returns, and what it
// returns must survive an encode/decode round trip.
func FuzzReadStartup(f *testing.F) {
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.SSLRequest{},
		&pgproto3.GSSEncRequest{},
		&pgproto3.CancelRequest{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "alice", "database": "app"}},
		&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion32, Parameters: map[string]string{"user": "a", "_pq_.x": "y"}},
	} {
		f.Add(append(encode(f, m), "trailing"...))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := newRW(in)
		msg, err := ReadStartup(c, 0)
		if err != nil {
			return
		}
		size := int(binary.BigEndian.Uint32(in))
		if rest, _ := io.ReadAll(c.in); !bytes.Equal(rest, in[size:]) {
			t.Fatalf("consumed %d bytes, the message is %d", len(in)-len(rest), size)
		}
		enc := encode(t, msg)
		again, err := ReadStartup(newRW(enc), 0)
		if err != nil {
			t.Fatalf("re-reading %q: %v", enc, err)
		}
		if !reflect.DeepEqual(again, msg) {
			t.Fatalf("round trip: %#v != %#v", again, msg)
		}
	})
}
