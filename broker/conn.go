package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ferry-io/ferry/internal/perm"
	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
	"github.com/lxzan/gws"
	"golang.org/x/time/rate"
)

// conn is one client connection. gws runs its read loop (one goroutine);
// a writer goroutine, started on demand, drains the outbound queue with
// vectored writes. The conn is also the gws session storage, so that gws
// callbacks find it without a map look-up.
type conn struct {
	b      *Broker
	ws     *gws.Conn
	nc     *lockedConn
	codec  protocol.Codec // negotiated: the codec of every frame we send
	remote string
	q      outQueue

	sess *session
	id   *Identity     // from Options.Authenticate; nil without it
	perm *perm.Set     // id's permissions, when Options.Authorize is nil; nil: all allowed
	lim  *rate.Limiter // Options.PubRate (or id's Limits); nil: no limit
	exp  *time.Timer   // closes the connection when id expires
	subs int           // Options.MaxSubscriptions (or id's Limits)

	// owned by the read goroutine
	frame protocol.Frame

	// for peerProgress: the unacknowledged bytes at the last look, plus
	// one (0: no look yet), and when they last went down
	unackedPrev atomic.Int64
	progressAt  atomic.Int64
	lastRead    atomic.Int64 // unix nanos of the last inbound frame
	deadlineSet int64        // read goroutine only: when the read deadline was last pushed out
	closing     atomic.Bool  // a close frame is queued: inbound frames are ignored
	handling    sync.Mutex   // held by the reader while it handles a frame (Shutdown waits on it)
	cleanupOnce sync.Once
}

// gws.SessionStorage, unused: conn only rides along in the session slot.
func (c *conn) Len() int                        { return 0 }
func (c *conn) Load(string) (any, bool)         { return nil, false }
func (c *conn) Delete(string)                   {}
func (c *conn) Store(string, any)               {}
func (c *conn) Range(func(string, any) bool)    {}
func connOf(socket *gws.Conn) *conn             { return socket.Session().(*conn) }
func (c *conn) String() string                  { return c.remote }
func (c *conn) encode(f *protocol.Frame) []byte { return encodeFrame(c.codec, f) }
func (c *conn) log(msg string, args ...any)     { c.b.log.Debug(msg, append(args, "remote", c.remote)...) }

// closeGrace bounds writing the close frame, and waiting for the peer's
// answer, once a connection is being closed.
const closeGrace = time.Second

// init prepares a freshly upgraded connection.
func (c *conn) init(b *Broker, socket *gws.Conn, lc *lockedConn, codec protocol.Codec, remote string) {
	c.b, c.ws, c.nc, c.codec, c.remote = b, socket, lc, codec, remote
	lc.timeout = b.opts.WriteTimeout
	lc.lingers = &b.lingers
	if tcp, ok := lc.Conn.(*net.TCPConn); ok && canReadNow {
		lc.raw, _ = tcp.SyscallConn()
	}
	c.q.limit = b.opts.QueueBytes
	c.q.writer = c.writeLoop
	c.q.overflowFrame = func(n uint64) []byte { return c.encode(overflowErr(n)) }
	c.touch()
}

// ping queues a WebSocket ping if there is room: a connection that busy
// needs no keepalive, and the pinger must never wait.
func (c *conn) ping() { c.q.pushIfRoom(pingFrame) }

var pingFrame = wsframe.Control(wsframe.OpPing, nil)

func overflowErr(n uint64) *protocol.Frame {
	return &protocol.Frame{Op: protocol.OpErr, Code: protocol.CodeOverflow,
		Reason: "outbound queue full: messages were dropped", Dropped: n}
}

// send implements transport: live deliveries share one frame per codec.
func (c *conn) send(d *delivery, g *group) (pushResult, <-chan struct{}) {
	if g != nil {
		return c.q.push(d.groupFrame(c.codec, g))
	}
	return c.q.push(d.frame(c.codec))
}

// sendStored implements transport.
func (c *conn) sendStored(m *stored, o msgOpts) sendResult {
	f, ok := c.b.encodeMsg(c.codec, m, o)
	if !ok || o.force {
		if !c.q.pushForce(f) {
			return sendClosed
		}
		if !ok {
			return sendUnsendable
		}
		return sent
	}
	switch r, _ := c.q.pushReply(f); r {
	case pushed:
		return sent
	case pushClosed:
		return sendClosed
	}
	return sendFull
}

// sendRetained implements transport.
func (c *conn) sendRetained(m *stored) {
	c.sendFrame(c.b.msgFrame(c.codec, m, msgOpts{retained: true}))
}

// drop implements transport.
func (c *conn) drop(n uint64) { c.q.drop(n) }

// draining implements transport.
func (c *conn) draining(quiet, limit time.Duration) bool {
	return c.q.draining(quiet, limit) || c.peerProgress(quiet) && !c.q.isClosed()
}

// peerProgress reports whether the subscriber took bytes of what was
// written to its socket within quiet, where the system tells (Linux: the
// unacknowledged bytes of the send queue went down between two looks).
// A writer blocked on a full socket wakes only when a good part of the
// send buffer is free, which takes long for a subscriber that reads
// slowly but all the time: completed writes alone would call it stuck.
func (c *conn) peerProgress(quiet time.Duration) bool {
	if c.nc.raw == nil {
		return false
	}
	n, ok := unacked(c.nc.raw)
	if !ok {
		return false
	}
	now := time.Now().UnixNano()
	if prev := c.unackedPrev.Swap(int64(n) + 1); prev > 0 && int64(n)+1 < prev {
		c.progressAt.Store(now)
	}
	return now-c.progressAt.Load() < int64(quiet)
}

// overflow applies the slow-consumer policy after a push found the queue
// full for longer than the stall allowed.
func (c *conn) overflow() {
	if c.b.opts.SlowConsumer == Drop {
		c.q.drop(1)
		c.b.stats.dropped.Add(1)
		return
	}
	// the queue is discarded, so the err frame goes out first, then the close
	errF := c.encode(&protocol.Frame{Op: protocol.OpErr, Code: protocol.CodeSlowConsumer,
		Reason: "outbound queue full: disconnecting slow consumer"})
	if c.closeWithFrames(errF, protocol.CloseSlowConsumer, "slow consumer", true) {
		c.b.stats.slowConsumers.Add(1)
		c.b.log.Info("ferry: disconnecting slow consumer", "remote", c.remote, "queued_bytes", c.q.size())
	}
}

// sendFrame queues a reply or control frame, waiting for room if the queue is
// full: a client that does not read its replies stops being read. The wait
// ends when the writer makes room or the connection closes (WriteTimeout
// bounds how long a stuck writer lasts).
func (c *conn) sendFrame(f []byte) {
	for {
		r, wait := c.q.pushReply(f)
		if r != pushFull {
			return
		}
		<-wait
	}
}

func (c *conn) reply(f *protocol.Frame) { c.sendFrame(c.encode(f)) }

func (c *conn) replyErr(id uint64, hasID bool, e *protocol.Error) {
	c.reply(&protocol.Frame{Op: protocol.OpErr, ID: id, HasID: hasID, Code: e.Code, Reason: e.Reason})
}

// closeWith writes a close frame after the queued frames (or instead of
// them, with discard) and then closes the socket. It returns false if the
// connection was already closing.
func (c *conn) closeWith(code uint16, reason string, discard bool) bool {
	return c.closeWithFrames(nil, code, reason, discard)
}

// closeWithFrames is closeWith with frames written just before the close
// frame.
func (c *conn) closeWithFrames(before []byte, code uint16, reason string, discard bool) bool {
	if !c.q.closeAfter(append(before, wsframe.Close(code, reason)...), discard) {
		return false
	}
	c.closing.Store(true)
	if discard {
		// cut short a write stuck on a peer that does not read
		c.nc.cutAfter(closeGrace)
	}
	return true
}

// writeLoop drains the queue until it is empty, coalescing all queued
// frames into one vectored write.
func (c *conn) writeLoop() {
	defer c.recoverWriter()
	for {
		batch, n, closeF, stop := c.q.take()
		if stop {
			if closeF != nil {
				c.nc.cutAfter(closeGrace)
				_ = c.nc.writeBuffers([][]byte{closeF})
				// half-close so that the peer reads the close frame, then
				// give it a moment to answer before the read loop ends
				c.nc.closeWrite()
				_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
			}
			return
		}
		err := c.nc.writeBuffers(batch)
		c.q.written(batch, n)
		if err != nil {
			c.log("ferry: write failed", "err", err)
			c.q.shut()
			_ = c.nc.Close()
		}
	}
}

// touch records inbound traffic and pushes the read deadline out, at most
// once a second, unless the connection is closing.
func (c *conn) touch() {
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	if c.b.opts.PingInterval > 0 && now-c.deadlineSet > int64(time.Second) && !c.closing.Load() {
		c.deadlineSet = now
		// a backstop: the pinger closes idle connections first, with 4000
		_ = c.nc.SetReadDeadline(time.Unix(0, now).Add(c.b.opts.IdleTimeout + 2*c.b.opts.PingInterval + time.Second))
	}
}

// cleanup releases everything the connection holds. Runs once, from the
// read goroutine when it ends.
func (c *conn) cleanup() {
	c.cleanupOnce.Do(func() {
		if c.exp != nil {
			c.exp.Stop()
		}
		c.b.releaseSlot()
		c.sess.detach(c)
		c.q.shut()
		_ = c.nc.Close()
		c.q.writers.Wait()
		c.b.removeConn(c)
	})
}

// handler implements gws.Event for all connections.
type handler struct{ b *Broker }

func (h handler) OnOpen(*gws.Conn) {}

func (h handler) OnClose(socket *gws.Conn, err error) {
	c := connOf(socket)
	defer h.b.recoverPanic(c, "close")
	var refused *wsframe.Error
	if errors.As(err, &refused) {
		h.b.stats.protocolErrors.Add(1)
	}
	c.log("ferry: connection closed", "err", err)
	c.cleanup()
}

func (h handler) OnPing(socket *gws.Conn, payload []byte) {
	c := connOf(socket)
	defer h.b.recoverPanic(c, "ping")
	if c.closing.Load() {
		return
	}
	c.touch()
	c.sendFrame(wsframe.Control(wsframe.OpPong, payload))
}

func (h handler) OnPong(socket *gws.Conn, _ []byte) {
	c := connOf(socket)
	defer h.b.recoverPanic(c, "pong")
	if !c.closing.Load() {
		c.touch()
	}
}

func (h handler) OnMessage(socket *gws.Conn, msg *gws.Message) {
	c := connOf(socket)
	defer msg.Close()
	defer h.b.recoverPanic(c, "message")
	// Shutdown waits for the frame being handled (c.handling) after it
	// stopped connections from handling new ones (b.closed): a lock of the
	// connection's own, which only its reader takes otherwise
	c.handling.Lock()
	defer c.handling.Unlock()
	if c.closing.Load() || h.b.isClosed() {
		return // closing: what the client sends now is ignored
	}
	c.touch()
	codec := protocol.JSON
	if msg.Opcode == gws.OpcodeBinary {
		codec = protocol.Msgpack
	}
	c.handle(codec, msg.Bytes())
}

// handle processes one inbound frame.
func (c *conn) handle(codec protocol.Codec, b []byte) {
	f := &c.frame
	if err := protocol.Decode(codec, b, f); err != nil {
		c.b.stats.badFrames.Add(1)
		c.replyErr(f.ID, f.HasID, err)
		return
	}
	var err *protocol.Error
	switch f.Op {
	case protocol.OpSub:
		err = c.subscribe(f)
		if err == nil {
			return // replied and activated
		}
	case protocol.OpUnsub:
		err = c.unsubscribe(f)
	case protocol.OpPub:
		err = c.publish(codec, f)
	case protocol.OpAck, protocol.OpNack:
		ok := false
		if f.Op == protocol.OpAck {
			ok = c.sess.ack(c, f.Mid)
		} else {
			ok = c.sess.nack(c, f.Mid)
		}
		if !ok {
			err = protocol.Errorf(protocol.CodeBadFrame, "%s: no unacknowledged delivery with mid %d", f.Op, f.Mid)
		}
	case protocol.OpPing:
		c.reply(&protocol.Frame{Op: protocol.OpPong, ID: f.ID, HasID: f.HasID})
		return
	case protocol.OpAuth:
		err = c.refresh(f.Token)
	}
	switch {
	case err == errShuttingDown:
		// no reply: the client sends the publish again after reconnecting
	case err != nil:
		if err.Code == protocol.CodeBadFrame || err.Code == protocol.CodeBadTopic {
			c.b.stats.badFrames.Add(1)
		}
		c.replyErr(f.ID, f.HasID, err)
	case f.HasID:
		c.reply(&protocol.Frame{Op: protocol.OpAck, ID: f.ID, HasID: true})
	}
}

func (c *conn) subscribe(f *protocol.Frame) *protocol.Error {
	o := c.b.opts
	if err := protocol.ValidateFilter(f.Topic, o.MaxTopicBytes); err != nil {
		return err
	}
	if err := c.authorize(Subscribe, "sub", f.Topic); err != nil {
		return err
	}
	if err := validateGroup(f.Group, o.MaxTopicBytes); err != nil {
		return err
	}
	window := DefaultInflight
	if f.HasInflight && f.Ack {
		if f.Inflight < 1 || f.Inflight > uint64(o.MaxInflight) {
			return protocol.Errorf(protocol.CodeBadFrame, "sub: inflight %d is out of range: 1 to %d", f.Inflight, o.MaxInflight)
		}
		window = int(f.Inflight)
	}
	window = min(window, o.MaxInflight)
	s, existed, retained, err := c.sess.subscribe(c, f.Topic, f.Group, f.Ack, window, c.subs)
	if err != nil {
		return err
	}
	if !existed {
		if err := c.b.interest.sync(f.Topic, f.Group); err != nil {
			c.sess.unsubscribe(c, s.key)
			return protocol.Wrap(protocol.CodeInternal, "sub: the cluster cannot bring this subscription its messages: ", err)
		}
	}
	if f.HasID {
		c.reply(&protocol.Frame{Op: protocol.OpAck, ID: f.ID, HasID: true})
	}
	if !existed {
		s.activate(retained)
	}
	return nil
}

// authorize asks Options.Authorize whether the connection may do a on
// topic; op names the request in the refusal.
func (c *conn) authorize(a Action, op, topic string) *protocol.Error {
	if !c.allowed(a, topic) {
		c.b.stats.forbidden.Add(1)
		return protocol.Errorf(protocol.CodeForbidden, "%s: not allowed on %q", op, topic)
	}
	return nil
}

// allowed reports whether the connection may do a on topic.
func (c *conn) allowed(a Action, topic string) bool {
	switch {
	case c.b.opts.Authorize != nil:
		return c.b.opts.Authorize(c.id, a, topic)
	case c.perm == nil:
		return true
	case a == Publish:
		return c.perm.CanPublish(topic)
	}
	return c.perm.CanSubscribe(topic)
}

// armExpiry closes the connection with 4001 when its credential expires.
func (c *conn) armExpiry() {
	if c.id == nil || c.id.Expires.IsZero() {
		return
	}
	c.exp = time.AfterFunc(time.Until(c.id.Expires), func() {
		c.b.runRecovered("token expiry", func() {
			if c.closeWith(protocol.CloseTokenExpired, "token expired", true) {
				c.b.stats.tokenExpired.Add(1)
			}
		})
	})
}

// validateGroup checks a queue group name: UTF-8 without U+0000, no longer
// than a topic may be.
func validateGroup(g string, max int) *protocol.Error {
	switch {
	case len(g) > max:
		return protocol.Errorf(protocol.CodeBadFrame, "group name is %d bytes, over the limit of %d", len(g), max)
	case !utf8.ValidString(g) || strings.IndexByte(g, 0) >= 0:
		return protocol.Errorf(protocol.CodeBadFrame, "group name %q is not valid UTF-8 without U+0000", g)
	}
	return nil
}

func (c *conn) unsubscribe(f *protocol.Frame) *protocol.Error {
	if err := protocol.ValidateFilter(f.Topic, c.b.opts.MaxTopicBytes); err != nil {
		return err
	}
	if err := c.authorize(Subscribe, "unsub", f.Topic); err != nil {
		return err
	}
	if !c.sess.unsubscribe(c, subKey(f.Topic, f.Group)) {
		if f.Group != "" {
			return protocol.Errorf(protocol.CodeNotSubscribed, "unsub: not subscribed to %q in group %q", f.Topic, f.Group)
		}
		return protocol.Errorf(protocol.CodeNotSubscribed, "unsub: not subscribed to %q", f.Topic)
	}
	return nil
}

func (c *conn) publish(codec protocol.Codec, f *protocol.Frame) *protocol.Error {
	if err := protocol.ValidateTopic(f.Topic, c.b.opts.MaxTopicBytes); err != nil {
		return err
	}
	if protocol.IsSystem(f.Topic) {
		return protocol.Errorf(protocol.CodeForbidden, "pub: topic %q: topics starting with '$' are reserved for the broker", f.Topic)
	}
	if err := c.authorize(Publish, "pub", f.Topic); err != nil {
		return err
	}
	if c.lim != nil && !c.lim.Allow() {
		c.b.stats.rateLimited.Add(1)
		return protocol.Errorf(protocol.CodeRateLimited, "pub: over this connection's publish rate of %g/s (burst %d)", float64(c.lim.Limit()), c.lim.Burst())
	}
	d := newDelivery(c.b, f.Topic, codec, f.Data)
	defer d.release()
	return c.b.route(context.Background(), d, f.Retain, f.HasID)
}

// lockedConn serializes whole writes to the socket between the writer
// goroutine and gws (which writes close frames and handshake responses on
// its own), and replays bytes that net/http read ahead of the hijack.
type lockedConn struct {
	net.Conn
	wmu sync.Mutex
	pre []byte
	// ahead is a read-ahead buffer, taken from a pool while the peer sends
	// more than the caller's buffer holds, so that a busy connection reads
	// many frames per system call while an idle one holds only its small
	// bufio buffer. (*ahead)[ar:aw] is unread; aheadFull tells that the
	// last read filled it, so more is probably waiting. Read goroutine only.
	ahead     *[]byte
	ar, aw    int
	aheadFull bool
	timeout   time.Duration // bound of every write, once upgraded
	cutAt     atomic.Int64  // unix nanos: no write may last past this (0: none)

	raw       syscall.RawConn // a TCP connection's socket, for reads ahead that do not wait; nil: none
	lingers   *lingerSet      // the broker's, once upgraded: Close may linger
	closeSent atomic.Bool     // gws refused a frame and wrote its close frame
	lingering atomic.Bool

	check     wsframe.Checker               // the peer's frames, as Read passes them (read goroutine only)
	unchecked bool                          // tests only: gws parses unchecked headers
	refused   atomic.Pointer[wsframe.Error] // the checker's refusal, for Write
}

// deadlineLocked sets the write deadline of the next write; wmu is held.
func (l *lockedConn) deadlineLocked() {
	if l.timeout == 0 {
		return // during the handshake, gws sets its own deadline
	}
	d := time.Now().Add(l.timeout)
	if cut := l.cutAt.Load(); cut != 0 && cut < d.UnixNano() {
		d = time.Unix(0, cut)
	}
	_ = l.Conn.SetWriteDeadline(d)
}

// cutAfter bounds every write from now on, including one in progress, to
// end within d.
func (l *lockedConn) cutAfter(d time.Duration) {
	t := time.Now().Add(d)
	if l.cutAt.CompareAndSwap(0, t.UnixNano()) {
		_ = l.Conn.SetWriteDeadline(t)
	}
}

// readAheadSize is the size of the read-ahead buffers.
const readAheadSize = 32 << 10

var aheadPool = sync.Pool{New: func() any { b := make([]byte, readAheadSize); return &b }}

// Read reads what the peer sent, through the frame checker: a frame header
// that RFC 6455 forbids or that announces more than the frame limit is
// refused before gws parses it (gws answers the error with a close frame,
// which Write turns into the checker's code and reason).
func (l *lockedConn) Read(p []byte) (int, error) {
	if bad := l.check.Err(); bad != nil {
		return 0, bad
	}
	n, err := l.read(p)
	if n > 0 && !l.unchecked {
		if k, bad := l.check.Scan(p[:n]); bad != nil {
			l.refused.Store(bad)
			if k > 0 {
				return k, nil // the frames before the refused one
			}
			return 0, bad
		}
	}
	return n, err
}

func (l *lockedConn) read(p []byte) (int, error) {
	if len(l.pre) > 0 || l.ahead != nil {
		if n, err, ok := l.readBuffered(p); ok {
			return n, err
		}
	}
	// the idle wait happens here, in a small frame and into the caller's
	// small buffer: an idle connection holds no read-ahead buffer
	n, err := l.Conn.Read(p)
	if n == len(p) && len(p) < readAheadSize && err == nil && l.raw != nil {
		l.startAhead()
	}
	return n, err
}

// readBuffered serves p from the bytes read with the upgrade request or
// from the read-ahead buffer, reading ahead again, without waiting, if the
// last read filled it. ok is false when nothing is buffered and nothing has
// arrived: the caller then waits for it, without the read-ahead buffer.
func (l *lockedConn) readBuffered(p []byte) (n int, err error, ok bool) {
	if len(l.pre) > 0 {
		n = copy(p, l.pre)
		l.pre = l.pre[n:]
		return n, nil, true
	}
	if l.ar == l.aw && l.aheadFull {
		n, err = readNow(l.raw, *l.ahead)
		l.ar, l.aw, l.aheadFull = 0, n, n == len(*l.ahead)
		if err != nil {
			l.releaseAhead()
			return 0, err, true
		}
	}
	if l.ar < l.aw {
		n = copy(p, (*l.ahead)[l.ar:l.aw])
		l.ar += n
		return n, nil, true
	}
	l.releaseAhead()
	return 0, nil, false
}

//go:noinline
func (l *lockedConn) startAhead() {
	l.ahead = aheadPool.Get().(*[]byte)
	l.ar, l.aw, l.aheadFull = 0, 0, true
}

// releaseAhead returns the read-ahead buffer to the pool.
func (l *lockedConn) releaseAhead() {
	aheadPool.Put(l.ahead)
	l.ahead = nil
	l.ar, l.aw, l.aheadFull = 0, 0, false
}

func (l *lockedConn) Write(p []byte) (int, error) {
	if len(p) >= 2 && p[0] == 0x80|wsframe.OpClose { // gws ends the connection
		if bad := l.refused.Load(); bad != nil {
			// gws answers an error of the reader's with 1000: send the
			// checker's code and reason instead
			l.closeSent.Store(true)
			n := len(p)
			_, err := l.write(wsframe.Close(bad.Code, bad.Reason))
			return n, err
		}
		if len(p) >= 4 {
			switch int(p[2])<<8 | int(p[3]) {
			case 1002, 1003, 1007, 1009: // it refused a frame: the peer may be sending the rest
				l.closeSent.Store(true)
			}
		}
	}
	return l.write(p)
}

func (l *lockedConn) write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.deadlineLocked()
	return l.Conn.Write(p)
}

func (l *lockedConn) writeBuffers(bufs [][]byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.deadlineLocked()
	if _, tcp := l.Conn.(*net.TCPConn); !tcp && len(bufs) > 1 {
		// no writev (TLS, say): one write of the whole batch, not one
		// record and syscall per frame
		bp := batchPool.Get().(*[]byte)
		buf := (*bp)[:0]
		for _, b := range bufs {
			buf = append(buf, b...)
		}
		_, err := l.Conn.Write(buf)
		if cap(buf) <= 1<<20 {
			*bp = buf[:0]
			batchPool.Put(bp)
		}
		return err
	}
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(l.Conn)
	return err
}

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Close closes the connection. After gws wrote a close frame on its own
// (it refused a frame: too large, invalid UTF-8, a protocol error), the peer
// may still be sending the rest of that frame: closing at once would answer
// it with a reset, and a reset can make the peer's kernel discard the close
// frame before the peer reads it. So the connection is half-closed, and what
// the peer still sends is read and dropped for up to closeGrace (1 MiB at
// most) before it is closed.
func (l *lockedConn) Close() error {
	if l.lingering.Load() {
		return nil // closes by itself within closeGrace
	}
	tcp, ok := l.Conn.(*net.TCPConn) // (not TLS: its close_notify may wait behind a write)
	if !ok || l.lingers == nil || !l.closeSent.Load() || !l.lingering.CompareAndSwap(false, true) {
		return l.Conn.Close()
	}
	if tcp.CloseWrite() != nil {
		return l.Conn.Close()
	}
	l.lingers.add(l)
	go func() {
		defer l.lingers.done(l)
		_ = l.Conn.SetReadDeadline(time.Now().Add(closeGrace))
		buf := make([]byte, 4096)
		for total := 0; total < 1<<20; {
			n, err := l.Conn.Read(buf)
			if err != nil {
				break
			}
			total += n
		}
		_ = l.Conn.Close()
	}()
	return nil
}

// lingerSet tracks the connections that linger, so that Shutdown can wait
// for them or, once its time is up, close them at once.
type lingerSet struct {
	wg sync.WaitGroup
	mu sync.Mutex
	m  map[*lockedConn]struct{}
}

func (s *lingerSet) add(l *lockedConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[*lockedConn]struct{})
	}
	s.m[l] = struct{}{}
	s.wg.Add(1)
}

func (s *lingerSet) done(l *lockedConn) {
	s.mu.Lock()
	delete(s.m, l)
	s.mu.Unlock()
	s.wg.Done()
}

func (s *lingerSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.m {
		l.forceClose()
	}
}

// forceClose closes the connection now, lingering or not.
func (l *lockedConn) forceClose() { _ = l.Conn.Close() }

func (l *lockedConn) closeWrite() {
	if cw, ok := l.Conn.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = l.Conn.Close()
}
