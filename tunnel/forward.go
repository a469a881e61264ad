package tunnel

import (
	"context"
	"io"
	"net"
	"sync"

	"go.uber.org/zap"
)

// ForwardTo returns a ChannelHandler that connects to addr with dial (nil
// means a net.Dialer) and relays bytes both ways, passing half-closes along,
// until both directions have ended. Serve ChannelAuth with it to let agents
// reach the Auth service through the proxy:
//
//	srv.ChannelHandlers = map[string]tunnel.ChannelHandler{
//		tunnel.ChannelAuth: tunnel.ForwardTo(nil, "tcp", authAddr, logger),
//	}
//
// The relay is opaque: the agent speaks mTLS to the Auth service inside the
// channel with its own X.509 host certificate, so the Auth service sees the
// agent's identity, not the proxy's.
func ForwardTo(dial func(ctx context.Context, network, addr string) (net.Conn, error), network, addr string, logger *zap.Logger) ChannelHandler {
	if logger == nil {
		logger = zap.NewNop()
	}
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, agent AgentInfo, conn net.Conn) {
		up, err := dial(ctx, network, addr)
		if err != nil {
			logger.Warn("cannot forward agent channel", zap.String("agent", agent.ID), zap.String("to", addr), zap.Error(err))
			return
		}
		stop := context.AfterFunc(ctx, func() { up.Close(); conn.Close() })
		defer stop()
		Splice(conn, up)
	}
}

// Splice copies a->b and b->a until both directions reach EOF or fail,
// half-closing each destination (CloseWrite when it has one) when its source
// ends, then closes both.
func Splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(b, a)
	}()
	copyHalf(a, b)
	wg.Wait()
	a.Close()
	b.Close()
}

func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		cw.CloseWrite()
		return
	}
	// An error in one direction ends both: closing unblocks the other copy.
	dst.Close()
	src.Close()
}
