package wsframe

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
)

// ClientConn is a client's connection with every frame from the server
// checked (Checker, after the HTTP response) before the WebSocket library
// reads it. When a frame is refused, Read fails with the *Error, and the
// close frame the library then writes (it answers a read error with 1000)
// goes out with the Error's code and reason instead.
type ClientConn struct {
	net.Conn
	check   Checker
	refused atomic.Pointer[Error]
}

// NewClientConn wraps c, a connection on which the handshake is about to
// start. maxMessage bounds a message from the server (0: no bound).
func NewClientConn(c net.Conn, maxMessage uint64) *ClientConn {
	return &ClientConn{Conn: c, check: Checker{Response: true, MaxMessage: maxMessage}}
}

// Read reads through the checker.
func (c *ClientConn) Read(p []byte) (int, error) {
	if bad := c.check.Err(); bad != nil {
		return 0, bad
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if k, bad := c.check.Scan(p[:n]); bad != nil {
			c.refused.Store(bad)
			if k > 0 {
				return k, nil
			}
			return 0, bad
		}
	}
	return n, err
}

// Write writes p, or the refusal's close frame in place of a close frame.
func (c *ClientConn) Write(p []byte) (int, error) {
	if bad := c.refused.Load(); bad != nil && len(p) >= 2 && p[0] == 0x80|OpClose {
		var key [4]byte
		_, _ = rand.Read(key[:])
		_, err := c.Conn.Write(AppendMasked(nil, OpClose, binary.LittleEndian.Uint32(key[:]), ClosePayload(bad.Code, bad.Reason)))
		return len(p), err
	}
	return c.Conn.Write(p)
}

// Logger is gws's logger (its Logger option) writing to a slog.Logger.
type Logger struct{ *slog.Logger }

// Error logs v at error level.
func (l Logger) Error(v ...any) { l.Logger.Error(fmt.Sprint(v...)) }
