package tunnel

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-db/portcullis/ca"
	"golang.org/x/crypto/ssh"
)

// benchPair starts a proxy and one agent with handler, quiet logs.
func benchPair(b *testing.B, handler func(context.Context, net.Conn, []byte)) *testServer {
	b.Helper()
	pki := newPKI(b)
	srv := startServer(b, pki, "proxy1", nil, func(s *Server) { s.Logger = nil; s.KeepAliveInterval = 0 })
	startAgent(b, pki, "db1", []string{srv.addr}, func(a *Agent) { a.Handler = handler; a.KeepAliveInterval = 0 })
	waitFor(b, "agent", func() bool { return srv.connected("db1") == 1 })
	return srv
}

// BenchmarkChannelThroughput moves bytes through one session channel over
// loopback SSH (aes128-gcm), in each direction.
func BenchmarkChannelThroughput(b *testing.B) {
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	b.Run("proxy-to-agent", func(b *testing.B) {
		srv := benchPair(b, func(_ context.Context, c net.Conn, _ []byte) {
			io.Copy(io.Discard, c)
			c.Write([]byte{1}) // done
		})
		c, err := srv.Dial(context.Background(), "db1", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.SetBytes(chunk)
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.(interface{ CloseWrite() error }).CloseWrite()
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			b.Fatal(err)
		}
		reportMiBs(b, chunk)
	})
	b.Run("agent-to-proxy", func(b *testing.B) {
		srv := benchPair(b, func(_ context.Context, c net.Conn, extra []byte) {
			for n := binary.BigEndian.Uint64(extra); n > 0; n-- {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
		extra := binary.BigEndian.AppendUint64(nil, uint64(b.N))
		b.SetBytes(chunk)
		b.ResetTimer()
		c, err := srv.Dial(context.Background(), "db1", extra)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err != nil || n != int64(b.N)*chunk {
			b.Fatalf("read %d bytes, %v", n, err)
		}
		reportMiBs(b, chunk)
	})
}

// reportMiBs reports throughput in MiB/s (SetBytes reports 10^6 B/s).
func reportMiBs(b *testing.B, perOp int) {
	b.ReportMetric(float64(b.N)*float64(perOp)/(1<<20)/b.Elapsed().Seconds(), "MiB/s")
}

// BenchmarkOpenChannel measures Server.Dial (channel open round trip plus
// the net.Conn wrapper) and, in "first-byte", also one byte back from the
// agent's handler.
func BenchmarkOpenChannel(b *testing.B) {
	b.Run("open-close", func(b *testing.B) {
		srv := benchPair(b, func(context.Context, net.Conn, []byte) {})
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			c, err := srv.Dial(ctx, "db1", []byte("route"))
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	b.Run("first-byte", func(b *testing.B) {
		srv := benchPair(b, func(_ context.Context, c net.Conn, _ []byte) { c.Write([]byte{1}) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // the cancellable path
		defer cancel()
		one := make([]byte, 1)
		b.ResetTimer()
		for range b.N {
			c, err := srv.Dial(ctx, "db1", []byte("route"))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Read(one); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

// BenchmarkIdleAgents connects many idle agents to one proxy and reports
// the memory they add (runtime.MemStats HeapInuse+StackInuse delta divided by
// the number of agents) and goroutines per agent:
//
//   - in-process: agents and proxy in this process, so both ends of every
//     tunnel are counted (and each agent's own Run goroutine);
//   - proxy-only: the agents run in a child process (this test binary, see
//     TestHelperAgents), so the figure is what one agent costs the proxy.
//
// -short uses 100 agents instead of 1000.
func BenchmarkIdleAgents(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	b.Run("in-process", func(b *testing.B) {
		for range b.N {
			benchIdleAgents(b, n, false)
		}
	})
	b.Run("proxy-only", func(b *testing.B) {
		for range b.N {
			benchIdleAgents(b, n, true)
		}
	})
}

func benchIdleAgents(b *testing.B, n int, child bool) {
	b.StopTimer()
	pki := newPKI(b)
	srv := startServer(b, pki, "proxy1", nil, func(s *Server) { s.Logger = nil; s.KeepAliveInterval = 0 })
	var start func() (stop func())
	if child {
		start = func() func() { return startHelperAgents(b, pki, srv.addr, n) }
	} else {
		start = prepareAgents(b, pki, srv.addr, n)
	}
	before := memInUse()
	goroutines := runtime.NumGoroutine()
	b.StartTimer()
	began := time.Now()
	stop := start()
	waitFor(b, "all agents registered", func() bool {
		list := srv.Agents()
		if len(list) != n {
			return false
		}
		for _, a := range list {
			if a.Metadata == nil {
				return false
			}
		}
		return true
	})
	connectTime := time.Since(began)
	b.StopTimer()
	after := memInUse()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(n), "B/agent")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/float64(n), "goroutines/agent")
	b.ReportMetric(connectTime.Seconds()*1e3, "ms-to-connect-all")
	stop()
	srv.stop(b)
	b.StartTimer()
}

// prepareAgents configures n agents (signing their certificates) and
// returns a function that runs them in this process and returns their stop.
func prepareAgents(b *testing.B, pki *testPKI, addr string, n int) func() (stop func()) {
	agents := newAgents(b, pki, addr, n)
	return func() func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, n)
		for _, a := range agents {
			go func() {
				a.Run(ctx)
				done <- struct{}{}
			}()
		}
		return func() {
			cancel()
			for range n {
				<-done
			}
		}
	}
}

func newAgents(tb testing.TB, pki *testPKI, addr string, n int) []*Agent {
	agents := make([]*Agent, n)
	for i := range agents {
		id := fmt.Sprintf("db%04d", i)
		agents[i] = &Agent{
			ProxyAddrs: []string{addr},
			HostID:     id,
			Signer:     pki.agentSigner(tb, id, "Db", time.Hour),
			HostCAKeys: []ssh.PublicKey{pki.caKey},
			Handler:    echoHandler,
			Metadata:   []byte(`{"databases":["pg1","pg2"]}`),
		}
	}
	return agents
}

// startHelperAgents runs n agents in a child process (TestHelperAgents),
// which exits when its stdin closes.
func startHelperAgents(b *testing.B, pki *testPKI, addr string, n int) func() {
	keyPEM, err := pki.auth.KeyPEM()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAgents$", "-test.bench=^$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"TUNNEL_HELPER_ADDR="+addr,
		"TUNNEL_HELPER_N="+strconv.Itoa(n),
		"TUNNEL_HELPER_CA_CERT="+string(pki.auth.CertPEM()),
		"TUNNEL_HELPER_CA_KEY="+string(keyPEM),
	)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			b.Errorf("helper agents: %v", err)
		}
	}
}

// TestHelperAgents is not a test: BenchmarkIdleAgents/proxy-only runs this
// binary with it to host agents in a separate process.
func TestHelperAgents(t *testing.T) {
	addr := os.Getenv("TUNNEL_HELPER_ADDR")
	if addr == "" {
		t.Skip("helper process for BenchmarkIdleAgents")
	}
	n, err := strconv.Atoi(os.Getenv("TUNNEL_HELPER_N"))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.ParseAuthority(ca.HostCA, []byte(os.Getenv("TUNNEL_HELPER_CA_CERT")), []byte(os.Getenv("TUNNEL_HELPER_CA_KEY")))
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := auth.SSHPublicKey()
	if err != nil {
		t.Fatal(err)
	}
	agents := newAgents(t, &testPKI{auth: auth, caKey: caKey}, addr, n)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Run(ctx)
		}()
	}
	io.Copy(io.Discard, os.Stdin) // until the benchmark closes it
	cancel()
	wg.Wait()
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}
