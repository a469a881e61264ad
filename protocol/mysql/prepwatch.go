package mysql

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
)

// prepareOKSize is the size of a COM_STMT_PREPARE_OK packet's payload:
// status, statement ID, column count, parameter count, filler, warning
// count (MySQL may add a metadata flag byte, which the proxy never lets
// a client ask for).
const prepareOKSize = 12

// prepared is a statement the server prepared.
type prepared struct {
	id        uint32
	numParams int
	query     string
}

// prepWatch reads, in the server -> client direction, the first packet
// of the answer to a COM_STMT_PREPARE: the statement ID and parameter
// count that decoding later commands needs. The client -> server side arms
// it when it forwards the command; since a client waits for each answer
// before its next command, the first bytes the server sends afterwards
// start that answer. A second COM_STMT_PREPARE before the first is
// answered disarms it: with answers in flight it cannot tell which bytes
// start which, so neither statement is learned.
type prepWatch struct {
	armed atomic.Bool
	ready atomic.Int32 // len(results), read without the lock

	mu      sync.Mutex
	query   string
	head    [4 + prepareOKSize]byte
	n       int
	results []prepared
}

// arm expects the answer to a COM_STMT_PREPARE of query.
func (w *prepWatch) arm(query string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed.Load() {
		w.armed.Store(false)
		w.query = ""
		return
	}
	w.query, w.n = query, 0
	w.armed.Store(true)
}

// inspect looks at bytes from the server while armed.
func (w *prepWatch) inspect(p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed.Load() {
		return
	}
	w.n += copy(w.head[w.n:], p)
	if w.n >= 5 && w.head[4] != 0x00 {
		// An ERR packet (or anything else): no statement.
		w.armed.Store(false)
		return
	}
	if w.n < len(w.head) {
		return
	}
	w.armed.Store(false)
	size := int(w.head[0]) | int(w.head[1])<<8 | int(w.head[2])<<16
	if w.head[3] != 1 || size < prepareOKSize || size > prepareOKSize+1 || w.head[13] != 0 {
		return
	}
	w.results = append(w.results, prepared{
		id:        binary.LittleEndian.Uint32(w.head[5:]),
		numParams: int(binary.LittleEndian.Uint16(w.head[11:])),
		query:     w.query,
	})
	w.ready.Store(int32(len(w.results)))
}

// take returns and forgets what was learned.
func (w *prepWatch) take() []prepared {
	if w.ready.Load() == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.results
	w.results = nil
	w.ready.Store(0)
	return r
}
