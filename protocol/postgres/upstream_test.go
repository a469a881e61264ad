package postgres

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/portcullis-db/portcullis/internal/dbtest"
)

// fakeDB is a scripted PostgreSQL server for protocol unit tests: it
// accepts connections on a loopback port, answers SSLRequest per its
// sslAnswer ('S' then TLS, or 'N'), and hands each connection's backend to
// script after the first message following the SSL negotiation.
type fakeDB struct {
	ln        net.Listener
	serverTLS *tls.Config
	clientTLS *tls.Config
	sslAnswer byte
	script    func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage)
	wg        sync.WaitGroup
}

func newFakeDB(t *testing.T, sslAnswer byte, script func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage)) *fakeDB {
	t.Helper()
	dbCA := dbtest.NewDatabaseCA(t)
	prefix := dbtest.ServerFiles(t, dbCA)
	pair, err := tls.LoadX509KeyPair(prefix+".crt", prefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	cert, key := dbtest.ClientFiles(t, dbCA, "alice")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeDB{
		ln:        ln,
		serverTLS: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		clientTLS: dbtest.ClientTLS(t, prefix+".cas", cert, key),
		sslAnswer: sslAnswer,
		script:    script,
	}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeDB) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			f.handle(c)
		}()
	}
}

func (f *fakeDB) handle(c net.Conn) {
	var conn net.Conn = c
	be := pgproto3.NewBackend(conn, conn)
	msg, err := be.ReceiveStartupMessage()
	if err != nil {
		return
	}
	if _, ok := msg.(*pgproto3.SSLRequest); ok {
		if _, err := conn.Write([]byte{f.sslAnswer}); err != nil {
			return
		}
		if f.sslAnswer == 'S' {
			tc := tls.Server(conn, f.serverTLS)
			if tc.Handshake() != nil {
				return
			}
			conn = tc
			defer tc.Close()
		}
		be = pgproto3.NewBackend(conn, conn)
		if msg, err = be.ReceiveStartupMessage(); err != nil {
			return
		}
	}
	f.script(be, conn, msg)
}

func (f *fakeDB) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", f.ln.Addr().String())
}

func (f *fakeDB) connect(t *testing.T, params map[string]string) (*Upstream, error) {
	t.Helper()
	conn, err := f.dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ConnectUpstream(context.Background(), conn, f.clientTLS, params)
}

func sendAll(be *pgproto3.Backend, msgs ...pgproto3.BackendMessage) error {
	for _, m := range msgs {
		be.Send(m)
	}
	return be.Flush()
}

func TestConnectUpstreamPasswordRequired(t *testing.T) {
	for _, tc := range []struct {
		msg    pgproto3.BackendMessage
		method string
	}{
		{&pgproto3.AuthenticationCleartextPassword{}, AuthCleartext},
		{&pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}}, AuthMD5},
		{&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}}, AuthSCRAM},
	} {
		t.Run(tc.method, func(t *testing.T) {
			f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
				sendAll(be, tc.msg)
				io.Copy(io.Discard, conn)
			})
			_, err := f.connect(t, map[string]string{"user": "alice", "database": "app"})
			var pr *PasswordRequiredError
			if !errors.As(err, &pr) || pr.Method != tc.method || !IsPasswordRequired(err) {
				t.Fatalf("got %v, want PasswordRequiredError{%s}", err, tc.method)
			}
			if !strings.Contains(err.Error(), "configure it for client-certificate authentication (pctl auth sign --format db)") {
				t.Errorf("message: %q", err)
			}
		})
	}
}

func TestConnectUpstreamServerError(t *testing.T) {
	sent := &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "28000",
		Message: `role "alice" is not permitted to log in`, Routine: "InitializeSessionUserId"}
	f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
		sendAll(be, &pgproto3.AuthenticationOk{}, sent)
	})
	_, err := f.connect(t, map[string]string{"user": "alice"})
	var se *ServerError
	if !errors.As(err, &se) || !IsServerError(err) || se.Code != "28000" || se.Message != sent.Message || se.Severity != "FATAL" {
		t.Fatalf("got %v, want the server's error", err)
	}
	var buf bytes.Buffer
	if err := se.Forward(&buf); err != nil {
		t.Fatal(err)
	}
	want, _ := sent.Encode(nil)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("forwarded %q, want the server's bytes %q", buf.Bytes(), want)
	}
}

func TestConnectUpstreamAndReplay(t *testing.T) {
	var gotParams map[string]string
	notice := &pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "welcome"}
	f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
		sm := first.(*pgproto3.StartupMessage)
		gotParams = sm.Parameters
		sendAll(be,
			&pgproto3.AuthenticationOk{},
			&pgproto3.ParameterStatus{Name: "server_version", Value: "15.20"},
			(*pgproto3.NoticeResponse)(notice),
			&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
			&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{9, 9, 9, 9}},
			&pgproto3.ReadyForQuery{TxStatus: 'I'},
			// Sent after ReadyForQuery: must stay unread for the relay.
			&pgproto3.NotificationResponse{PID: 1, Channel: "c", Payload: "p"},
		)
		io.Copy(io.Discard, conn)
	})
	up, err := f.connect(t, map[string]string{"user": "alice", "database": "app", "application_name": "psql", "_pq_.opt": "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Conn.Close()
	if gotParams["user"] != "alice" || gotParams["database"] != "app" || gotParams["application_name"] != "psql" || gotParams["_pq_.opt"] != "" {
		t.Errorf("server got params %v", gotParams)
	}
	if up.Key.ProcessID != 4242 || !bytes.Equal(up.Key.Secret, []byte{9, 9, 9, 9}) {
		t.Errorf("real key %+v", up.Key)
	}
	if up.Parameters["server_version"] != "15.20" {
		t.Errorf("parameters %v", up.Parameters)
	}

	// The message after ReadyForQuery is still on the connection.
	fe := pgproto3.NewFrontend(up.Conn, io.Discard)
	if m, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if n, ok := m.(*pgproto3.NotificationResponse); !ok || n.Payload != "p" {
		t.Errorf("after startup: %#v", m)
	}

	// Replay with a substitute key: one write, the server's messages in
	// order, the substitute key.
	w := &countingWriter{}
	sub := BackendKey{ProcessID: 77, Secret: []byte{1, 2, 3, 4}}
	if err := up.ReplayStartup(w, sub); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("ReplayStartup made %d writes, want 1", w.writes)
	}
	cl := pgproto3.NewFrontend(bytes.NewReader(w.buf.Bytes()), io.Discard)
	var kinds []string
	for {
		m, err := cl.Receive()
		if err != nil {
			break
		}
		switch m := m.(type) {
		case *pgproto3.AuthenticationOk:
			kinds = append(kinds, "auth")
		case *pgproto3.ParameterStatus:
			kinds = append(kinds, m.Name)
		case *pgproto3.NoticeResponse:
			kinds = append(kinds, "notice:"+m.Message)
		case *pgproto3.BackendKeyData:
			if m.ProcessID != 77 || !bytes.Equal(m.SecretKey, sub.Secret) {
				t.Errorf("replayed key %d/%x, want the substitute", m.ProcessID, m.SecretKey)
			}
			kinds = append(kinds, "key")
		case *pgproto3.ReadyForQuery:
			kinds = append(kinds, "ready:"+string(m.TxStatus))
		}
	}
	if got := strings.Join(kinds, ","); got != "auth,server_version,notice:welcome,client_encoding,key,ready:I" {
		t.Errorf("replayed %s", got)
	}
	if err := up.ReplayStartup(io.Discard, BackendKey{ProcessID: 1, Secret: make([]byte, 32)}); err == nil {
		t.Error("a 32-byte secret was accepted for protocol 3.0")
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

func TestConnectUpstreamRefusals(t *testing.T) {
	t.Run("no TLS", func(t *testing.T) {
		f := newFakeDB(t, 'N', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {})
		_, err := f.connect(t, map[string]string{"user": "alice"})
		if err == nil || !strings.Contains(err.Error(), "does not accept TLS") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {})
		conn, err := f.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ConnectUpstream(context.Background(), conn, nil, map[string]string{"user": "alice"}); err == nil {
			t.Error("nil TLS config accepted")
		}
		conn, err = f.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ConnectUpstream(context.Background(), conn, f.clientTLS, map[string]string{}); err == nil {
			t.Error("missing user accepted")
		}
	})
	t.Run("unverified server", func(t *testing.T) {
		f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {})
		conn, err := f.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cfg := f.clientTLS.Clone()
		cfg.RootCAs = nil // the system roots do not know the test CA
		if _, err := ConnectUpstream(context.Background(), conn, cfg, map[string]string{"user": "alice"}); err == nil || !strings.Contains(err.Error(), "TLS handshake") {
			t.Errorf("got %v, want a TLS verification failure", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		release := make(chan struct{})
		f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
			<-release // never answers the StartupMessage
		})
		defer close(release)
		conn, err := f.dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := ConnectUpstream(ctx, conn, f.clientTLS, map[string]string{"user": "alice"})
			errc <- err
		}()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestSendCancel(t *testing.T) {
	key := BackendKey{ProcessID: 1234, Secret: []byte{5, 6, 7, 8}}
	for _, answer := range []byte{'S', 'N'} {
		t.Run(string(answer), func(t *testing.T) {
			got := make(chan *pgproto3.CancelRequest, 1)
			f := newFakeDB(t, answer, func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
				if cr, ok := first.(*pgproto3.CancelRequest); ok {
					got <- &pgproto3.CancelRequest{ProcessID: cr.ProcessID, SecretKey: append([]byte(nil), cr.SecretKey...)}
				}
			})
			if err := SendCancel(context.Background(), f.dial, f.clientTLS, key); err != nil {
				t.Fatal(err)
			}
			cr := <-got
			if cr.ProcessID != key.ProcessID || !bytes.Equal(cr.SecretKey, key.Secret) {
				t.Errorf("server got %+v", cr)
			}
		})
	}
	t.Run("plaintext", func(t *testing.T) {
		got := make(chan uint32, 1)
		f := newFakeDB(t, 'S', func(be *pgproto3.Backend, conn net.Conn, first pgproto3.FrontendMessage) {
			if cr, ok := first.(*pgproto3.CancelRequest); ok {
				got <- cr.ProcessID
			}
		})
		if err := SendCancel(context.Background(), f.dial, nil, key); err != nil {
			t.Fatal(err)
		}
		if pid := <-got; pid != key.ProcessID {
			t.Errorf("pid %d", pid)
		}
	})
}

func TestNewBackendKey(t *testing.T) {
	k, err := NewBackendKey(bytes.NewReader([]byte{0x80, 0, 0, 0, 1, 2, 3, 4}))
	if err != nil {
		t.Fatal(err)
	}
	if k.ProcessID != 1 || !bytes.Equal(k.Secret, []byte{1, 2, 3, 4}) {
		t.Errorf("key %+v: want a positive, non-zero pid and the 4 random bytes", k)
	}
	if _, err := NewBackendKey(bytes.NewReader(nil)); err == nil {
		t.Error("no randomness, no error")
	}
}
