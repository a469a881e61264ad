package iobuf

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// chunky reads at most a random few bytes at a time, like a network
// connection delivering records.
type chunky struct {
	r   io.Reader
	rnd *rand.Rand
	max int
}

func (c *chunky) Read(p []byte) (int, error) {
	n := 1 + c.rnd.IntN(c.max)
	if n < len(p) {
		p = p[:n]
	}
	return c.r.Read(p)
}

func randomData(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}

// The Reader gives the same bytes and errors as a bufio.Reader of the same
// size for any mix of Peek, Discard and Read.
func TestReaderMatchesBufio(t *testing.T) {
	for seed := uint64(0); seed < 200; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 1))
		data := randomData(rnd, rnd.IntN(5000))
		pool := NewPool(64)
		maxChunk := 1 + rnd.IntN(700)
		ours := NewReader(&chunky{bytes.NewReader(data), rand.New(rand.NewPCG(seed, 2)), maxChunk}, pool)
		ref := bufio.NewReaderSize(bytes.NewReader(data), 64)
		var gotAll, wantAll []byte
		for step := 0; step < 10000 && len(gotAll) < len(data); step++ {
			switch rnd.IntN(3) {
			case 0:
				n := rnd.IntN(70)
				p, err := ours.Peek(n)
				q, rerr := ref.Peek(n)
				if !bytes.Equal(p, q) || (err == nil) != (rerr == nil) {
					t.Fatalf("seed %d: Peek(%d) = %d bytes, %v; bufio %d bytes, %v", seed, n, len(p), err, len(q), rerr)
				}
			case 1:
				n := rnd.IntN(100)
				k, err := ours.Discard(n)
				rk, rerr := ref.Discard(n)
				if k != rk || (err == nil) != (rerr == nil) {
					t.Fatalf("seed %d: Discard(%d) = %d, %v; bufio %d, %v", seed, n, k, err, rk, rerr)
				}
				gotAll = append(gotAll, data[len(gotAll):len(gotAll)+k]...)
				wantAll = append(wantAll, data[len(wantAll):len(wantAll)+rk]...)
			case 2:
				p := make([]byte, rnd.IntN(200))
				n, err := io.ReadFull(ours, p)
				q := make([]byte, len(p))
				rn, rerr := io.ReadFull(ref, q)
				if n != rn || !bytes.Equal(p[:n], q[:rn]) || (err == nil) != (rerr == nil) {
					t.Fatalf("seed %d: ReadFull(%d) = %d, %v; bufio %d, %v", seed, len(p), n, err, rn, rerr)
				}
				gotAll = append(gotAll, p[:n]...)
				wantAll = append(wantAll, q[:rn]...)
			}
			if ours.Buffered() > ours.Size() {
				t.Fatalf("seed %d: %d bytes buffered, more than the size %d", seed, ours.Buffered(), ours.Size())
			}
		}
		if !bytes.Equal(gotAll, wantAll) {
			t.Fatalf("seed %d: streams differ", seed)
		}
	}
}

func TestReaderPeekLargerThanSize(t *testing.T) {
	r := NewReader(bytes.NewReader(make([]byte, 100)), NewPool(16))
	if p, err := r.Peek(17); !errors.Is(err, bufio.ErrBufferFull) || len(p) != 16 {
		t.Fatalf("Peek(17) = %d bytes, %v; want 16, ErrBufferFull", len(p), err)
	}
}

// blockingReader reports whether a Read was made while the Reader held a
// pool buffer.
type watchedReader struct {
	r      io.Reader
	reader *Reader
	held   int
}

func (w *watchedReader) Read(p []byte) (int, error) {
	if w.reader.buf != nil && w.reader.Buffered() == 0 {
		w.held++
	}
	return w.r.Read(p)
}

// A Reader never waits for input holding an empty pool buffer, and holds
// none once everything buffered was consumed and it waits again.
func TestReaderWaitsWithoutAPoolBuffer(t *testing.T) {
	pool := NewPool(256)
	w := &watchedReader{r: iotest.OneByteReader(bytes.NewReader(bytes.Repeat([]byte("ab"), 300)))}
	r := NewReader(w, pool)
	w.reader = r
	for {
		if _, err := r.Peek(3); err != nil {
			break
		}
		if _, err := r.Discard(3); err != nil {
			t.Fatal(err)
		}
	}
	if w.held != 0 {
		t.Fatalf("%d reads waited while an empty pool buffer was held", w.held)
	}
	if r.buf != nil {
		t.Fatal("the Reader kept a pool buffer after the input ended")
	}
}

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes++
	return c.Buffer.Write(p)
}

func TestWriter(t *testing.T) {
	rnd := rand.New(rand.NewPCG(7, 7))
	data := randomData(rnd, 10000)
	var out countingWriter
	w := NewWriter(&out, NewPool(128))
	for rest := data; len(rest) > 0; {
		n := min(len(rest), rnd.IntN(300))
		if k, err := w.Write(rest[:n]); k != n || err != nil {
			t.Fatalf("Write = %d, %v", k, err)
		}
		rest = rest[n:]
		if rnd.IntN(4) == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if w.buf != nil || w.Buffered() != 0 {
				t.Fatal("Flush kept the buffer")
			}
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("the written stream differs")
	}
	// Small writes are gathered.
	out.Reset()
	out.writes = 0
	for range 10 {
		w.Write([]byte("0123456789"))
	}
	w.Flush()
	if out.writes != 1 || out.String() != string(bytes.Repeat([]byte("0123456789"), 10)) {
		t.Fatalf("10 small writes and a flush made %d writes of %q", out.writes, out.String())
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("broken")
	}
	f.after--
	return len(p), nil
}

func TestWriterKeepsItsError(t *testing.T) {
	w := NewWriter(&failingWriter{}, NewPool(8))
	w.Write([]byte("abc"))
	if err := w.Flush(); err == nil {
		t.Fatal("Flush to a broken writer succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after a failed Flush succeeded")
	}
}

func TestCopy(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		rnd := rand.New(rand.NewPCG(seed, 3))
		data := randomData(rnd, rnd.IntN(200000))
		var out bytes.Buffer
		n, err := Copy(&out, &chunky{bytes.NewReader(data), rnd, 1 + rnd.IntN(40000)}, NewPool(0))
		if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("seed %d: Copy = %d, %v; want %d bytes intact", seed, n, err, len(data))
		}
	}
	boom := errors.New("boom")
	if _, err := Copy(io.Discard, iotest.ErrReader(boom), NewPool(0)); err != boom {
		t.Fatalf("Copy from a failing reader = %v", err)
	}
	if _, err := Copy(&failingWriter{}, bytes.NewReader([]byte("x")), NewPool(0)); err == nil {
		t.Fatal("Copy to a failing writer succeeded")
	}
}

// BenchmarkCopy measures bytes allocated per byte copied in bursts.
func BenchmarkCopy(b *testing.B) {
	data := make([]byte, 1<<20)
	pool := NewPool(0)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		Copy(io.Discard, &chunky{bytes.NewReader(data), rand.New(rand.NewPCG(1, 1)), 16 << 10}, pool)
	}
}
