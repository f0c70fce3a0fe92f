package broker

import (
	"runtime/debug"
	"time"

	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
)

// No panic escapes a goroutine the broker starts: connection read loops and
// writers, gws callbacks, the pinger, the redeliverer, session timers and
// in-process subscriptions all recover. A recovered panic is logged once,
// with its stack, counted (Stats.Panics), and ends no more than the
// connection it happened on.

// logPanic logs a recovered panic with its stack and counts it.
func (b *Broker) logPanic(where string, r any, args ...any) {
	b.stats.panics.Add(1)
	b.log.Error("ferry: recovered panic", append([]any{"where", where, "panic", r, "stack", string(debug.Stack())}, args...)...)
}

// recoverPanic, deferred in a gws callback, keeps a panic there from ending
// the read loop: the client gets an internal error for the frame it sent,
// and the connection goes on.
func (b *Broker) recoverPanic(c *conn, where string) {
	if r := recover(); r != nil {
		b.logPanic(where, r, "remote", c.remote)
		if where == "message" {
			c.replyErr(c.frame.ID, c.frame.HasID, protocol.Errorf(protocol.CodeInternal, "internal error while handling the frame"))
		}
	}
}

// recoverReadLoop, deferred in a connection's read goroutine, ends the
// connection after a panic in gws's read loop: close 1011, then what
// OnClose would have done.
func (b *Broker) recoverReadLoop(c *conn) {
	if r := recover(); r != nil {
		b.logPanic("read loop", r, "remote", c.remote)
		c.abort(protocol.CloseInternal, "internal error")
	}
}

// abort writes a close frame at once, past anything queued, and releases
// the connection. For the read goroutine only.
func (c *conn) abort(code uint16, reason string) {
	defer func() {
		if r := recover(); r != nil {
			// a second panic, in the cleanup itself: the socket at least closes
			c.b.logPanic("abort", r, "remote", c.remote)
			c.nc.forceClose()
		}
	}()
	c.closing.Store(true)
	c.nc.cutAfter(closeGrace)
	_, _ = c.nc.write(wsframe.Close(code, reason))
	c.cleanup()
}

// recoverWriter, deferred in a connection's writer goroutine, stops the
// writer after a panic and closes the socket, which ends the read loop and
// so the connection.
func (c *conn) recoverWriter() {
	if r := recover(); r != nil {
		c.b.logPanic("writer", r, "remote", c.remote)
		c.q.abandon()
		c.nc.forceClose()
	}
}

// loop runs a background loop of the broker until it returns, starting it
// again (after a second) when it panics.
func (b *Broker) loop(where string, f func()) {
	defer b.bgWG.Done()
	for {
		if !b.runRecovered(where, f) {
			return
		}
		select {
		case <-b.done:
			return
		case <-time.After(time.Second):
		}
	}
}

// runRecovered runs f and reports whether it panicked.
func (b *Broker) runRecovered(where string, f func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			b.logPanic(where, r)
			panicked = true
		}
	}()
	f()
	return false
}
