package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// tunnelPipe returns the two ends of one session channel over a real
// loopback tunnel: the proxy's (from Server.Dial) and the agent's (handed to
// Handler). Both are closed when the test ends.
func tunnelPipe(t *testing.T) (proxyEnd, agentEnd net.Conn) {
	t.Helper()
	pki := newPKI(t)
	srv := startServer(t, pki, "proxy1", nil, nil)
	conns := make(chan net.Conn, 1)
	release := make(chan struct{})
	startAgent(t, pki, "db1", []string{srv.addr}, func(a *Agent) {
		a.Handler = func(ctx context.Context, c net.Conn, _ []byte) {
			conns <- c
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	})
	t.Cleanup(func() { close(release) })
	waitFor(t, "agent", func() bool { return srv.connected("db1") == 1 })
	p, err := srv.Dial(context.Background(), "db1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, <-conns
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded)
}

func TestConnPastReadDeadlineThenUsable(t *testing.T) {
	p, a := tunnelPipe(t)
	p.SetReadDeadline(time.Now().Add(-time.Second))
	if n, err := p.Read(make([]byte, 8)); n != 0 || !isTimeout(err) {
		t.Fatalf("Read past deadline = %d, %v", n, err)
	}
	p.SetReadDeadline(time.Time{})
	a.Write([]byte("x"))
	buf := make([]byte, 1)
	if _, err := io.ReadFull(p, buf); err != nil || buf[0] != 'x' {
		t.Fatalf("Read after clearing the deadline = %q, %v", buf, err)
	}
}

func TestConnDeadlineWakesBlockedRead(t *testing.T) {
	p, _ := tunnelPipe(t)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 8))
		errc <- err
	}()
	p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := <-errc; !isTimeout(err) {
		t.Fatalf("blocked Read = %v, want a timeout", err)
	}
}

// A Write that times out because the peer does not read must not lose or
// duplicate bytes: what Write reported as written arrives, in order.
func TestConnWriteTimeoutKeepsStreamIntact(t *testing.T) {
	p, a := tunnelPipe(t)
	chunk := bytes.Repeat([]byte("abcdefgh"), 8<<10) // 64 KiB
	var written int
	p.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	for {
		n, err := p.Write(chunk)
		written += n
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("Write = %v, want a timeout", err)
			}
			break
		}
	}
	t.Logf("%d KiB buffered in the tunnel before the write deadline", written>>10)
	type result struct {
		b   []byte
		err error
	}
	rc := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(a)
		rc <- result{b, err}
	}()
	p.SetWriteDeadline(time.Time{})
	if _, err := p.Write([]byte("END")); err != nil {
		t.Fatalf("Write after a timeout: %v", err)
	}
	p.(interface{ CloseWrite() error }).CloseWrite()
	r := <-rc
	got, err := r.b, r.err
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != written+3 || string(got[len(got)-3:]) != "END" {
		t.Fatalf("peer read %d bytes, want %d ending in END", len(got), written+3)
	}
	for i := 0; i < written; i++ {
		if got[i] != chunk[i%len(chunk)] {
			t.Fatalf("byte %d corrupted", i)
		}
	}
}

func TestConnCloseUnblocksAndPeerSeesEOF(t *testing.T) {
	p, a := tunnelPipe(t)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 8))
		errc <- err
	}()
	p.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read blocked across Close = %v, want net.ErrClosed", err)
	}
	if _, err := a.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("peer Read after Close = %v, want io.EOF", err)
	}
	if _, err := a.Write([]byte("late")); err == nil {
		// The first write may be accepted before the close arrives; a
		// later one must fail.
		waitFor(t, "writes to a closed peer fail", func() bool {
			_, err := a.Write([]byte("late"))
			return err != nil
		})
	}
}

func TestConnConcurrentUse(t *testing.T) {
	p, a := tunnelPipe(t)
	const n = 200
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // writer
		defer wg.Done()
		for i := 0; i < n; i++ {
			p.Write([]byte("0123456789"))
		}
	}()
	go func() { // deadline fiddler
		defer wg.Done()
		for i := 0; i < n; i++ {
			p.SetDeadline(time.Now().Add(time.Minute))
			p.SetReadDeadline(time.Time{})
		}
	}()
	go func() { // reader on the agent side
		defer wg.Done()
		io.ReadFull(a, make([]byte, 10*n))
	}()
	wg.Wait()
}

// A Read that times out on its deadline leaves the stream intact: what its
// helper receives later is the next Read's.
func TestConnTimedReadKeepsStreamIntact(t *testing.T) {
	p, a := tunnelPipe(t)
	p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := p.Read(make([]byte, 8)); n != 0 || !isTimeout(err) {
		t.Fatalf("Read = %d, %v, want a timeout", n, err)
	}
	a.Write([]byte("hello, world"))
	p.SetReadDeadline(time.Time{})
	got := make([]byte, 12)
	if _, err := io.ReadFull(p, got); err != nil || string(got) != "hello, world" {
		t.Fatalf("Read after the timeout = %q, %v", got, err)
	}
	// Reads without a deadline go straight to the channel again.
	a.Write([]byte("more"))
	if _, err := io.ReadFull(p, got[:4]); err != nil || string(got[:4]) != "more" {
		t.Fatalf("direct Read = %q, %v", got[:4], err)
	}
}

// A Read blocked without a deadline cannot be woken but by closing the
// channel: a deadline set later ends it, and the connection, with a timeout.
func TestConnLateDeadlineEndsBlockedRead(t *testing.T) {
	p, a := tunnelPipe(t)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Read(make([]byte, 8))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the Read block in the channel
	p.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if err := <-errc; !isTimeout(err) {
		t.Fatalf("blocked Read = %v, want a timeout", err)
	}
	if _, err := p.Write([]byte("x")); !isTimeout(err) {
		t.Fatalf("Write after the channel was ended = %v, want the timeout again", err)
	}
	if _, err := a.Read(make([]byte, 8)); err != io.EOF {
		t.Fatalf("peer Read = %v, want io.EOF", err)
	}
}
