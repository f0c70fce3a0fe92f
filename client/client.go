package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
	"github.com/lxzan/gws"
)

// Status is the state of a Client's connection.
type Status int32

const (
	Connecting   Status = iota // the first connection is being made
	Connected                  // a connection is up
	Disconnected               // the connection was lost; a reconnect follows
	Reconnecting               // a reconnect attempt is under way
	Closed                     // closed for good
)

func (s Status) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Reconnecting:
		return "reconnecting"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("status(%d)", int32(s))
}

// Client is a connection to a ferry broker that reconnects by itself. Its
// methods are safe for concurrent use.
type Client struct {
	url  *url.URL
	opts Options

	status atomic.Int32
	nextID atomic.Uint64
	// epoch counts broker sessions: mids of an earlier session mean
	// nothing to the broker now and are not acknowledged
	epoch atomic.Uint64
	out   outbox

	mu   sync.Mutex
	conn *connection // current connection; nil while down
	subs map[string]*Subscription
	// subsGen counts changes of subs (made with mu held)
	subsGen atomic.Uint64
	unsubs  map[string][2]string // unsubscribes to send after a reconnect
	waiters map[uint64]chan *protocol.Frame
	closed  bool

	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the connection loop has ended
	draining atomic.Bool
	subWG    sync.WaitGroup // subscriptions' handler goroutines

	cbMu      sync.Mutex
	cbQueue   []func()
	cbRunning bool

	// attempt times, for tests of the backoff spread
	onAttempt func(n int)
}

// connection is one WebSocket connection of a Client.
type connection struct {
	c        *Client
	ws       *gws.Conn
	closed   chan struct{} // the read loop ended (finish)
	finished sync.Once
	err      error // why, set before closed
	closeErr error // what gws reported, set before closed
	lastRead atomic.Int64
	// active: a message was read since the keepalive last looked (a flag,
	// not a clock read per message)
	active atomic.Bool
	kill   sync.Once
	frame  protocol.Frame // decoded into by OnMessage, on the read goroutine only
	// dispatch's, on the read goroutine only: the subscriptions of
	// targetsTopic while c.subsGen was targetsGen
	targets      []*Subscription
	targetsTopic string
	targetsGen   uint64
	token        string // the TokenSource's token the connection was made with
	// held is when the reader began waiting for a full subscription's
	// handler (0: it is not): silence then is not the broker's
	held atomic.Int64
	// lastWrite is when a write of publishes last completed: a broker
	// that holds this client's publishes (backpressure) reads no pings,
	// but its socket takes what is written
	lastWrite atomic.Int64
	dead      chan struct{} // closed when the connection is being closed
}

// Connect dials the broker at url (ws:// or wss://) and returns a client
// that stays connected: when the connection is lost it reconnects with
// backoff, resubscribes, and sends again what was not acknowledged. The
// first connection must succeed within ctx.
func Connect(ctx context.Context, rawURL string, opts ...Option) (*Client, error) {
	var o Options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("client: bad URL %q: %w", rawURL, err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("client: bad URL %q: scheme must be ws or wss", rawURL)
	}
	if o.Session == "" && !o.NoSession {
		var b [12]byte
		_, _ = rand.Read(b[:])
		o.Session = hex.EncodeToString(b[:])
	}
	if !o.NoSession {
		q := u.Query()
		q.Set("session", o.Session)
		u.RawQuery = q.Encode()
	}
	c := &Client{
		url:     u,
		opts:    o,
		subs:    make(map[string]*Subscription),
		unsubs:  make(map[string][2]string),
		waiters: make(map[uint64]chan *protocol.Frame),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	c.out.init(o.BufferMessages, o.BufferBytes)
	c.setStatus(Connecting, nil)
	conn, err := c.dial(ctx)
	if err != nil {
		c.setStatus(Closed, err)
		return nil, err
	}
	c.mu.Lock()
	c.conn = conn // so that Subscribe right after Connect uses it
	c.mu.Unlock()
	c.setStatus(Connected, nil)
	go c.runGuarded(conn)
	return c, nil
}

// Status returns the current status.
func (c *Client) Status() Status { return Status(c.status.Load()) }

// Session returns the session id the client presents.
func (c *Client) Session() string { return c.opts.Session }

// setStatus records a status change; Closed is final.
func (c *Client) setStatus(s Status, err error) {
	for {
		old := c.status.Load()
		if Status(old) == Closed && s != Closed {
			return
		}
		if c.status.CompareAndSwap(old, int32(s)) {
			break
		}
	}
	if c.opts.OnStatus != nil {
		c.callback(func() { c.opts.OnStatus(s, err) })
	}
}

func (c *Client) reportError(err error) {
	c.opts.Logger.Debug("client: error", "err", err)
	if c.opts.OnError != nil {
		c.callback(func() { c.opts.OnError(err) })
	}
}

// callback queues a user callback. Callbacks run one at a time, in order,
// on a goroutine of their own (started when there is work), never on the
// client's reader or connection loop: a callback may block for a while or
// call Close without stalling the client.
func (c *Client) callback(f func()) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.cbQueue = append(c.cbQueue, f)
	if !c.cbRunning {
		c.cbRunning = true
		go c.runCallbacks()
	}
}

func (c *Client) runCallbacks() {
	for {
		c.cbMu.Lock()
		if len(c.cbQueue) == 0 {
			c.cbQueue = nil
			c.cbRunning = false
			c.cbMu.Unlock()
			return
		}
		f := c.cbQueue[0]
		c.cbQueue[0] = nil
		c.cbQueue = c.cbQueue[1:]
		c.cbMu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					c.opts.Logger.Error("client: panic in callback", "panic", r)
				}
			}()
			f()
		}()
	}
}

// dial makes one connection.
func (c *Client) dial(ctx context.Context) (*connection, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	host := c.url.Host
	if c.url.Port() == "" {
		if c.url.Scheme == "wss" {
			host = net.JoinHostPort(c.url.Hostname(), "443")
		} else {
			host = net.JoinHostPort(c.url.Hostname(), "80")
		}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if c.url.Scheme == "wss" {
		cfg := c.opts.TLSConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = c.url.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	h := http.Header{}
	for k, v := range c.opts.Header {
		h[k] = append([]string(nil), v...)
	}
	token := c.opts.Token
	if c.opts.TokenSource != nil {
		if token, err = c.opts.TokenSource(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("client: token source: %w", err)
		}
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	h.Set("Sec-WebSocket-Protocol", c.opts.Codec.Subprotocol())
	conn := &connection{c: c, closed: make(chan struct{}), dead: make(chan struct{})}
	if c.opts.TokenSource != nil {
		conn.token = token
	}
	// the handshake: bounded by ctx (gws sets its own deadline from
	// HandshakeTimeout; a cancelled ctx cuts the connection)
	hs := c.opts.DialTimeout
	if dl, ok := ctx.Deadline(); ok {
		hs = max(time.Until(dl), time.Millisecond)
	}
	stopCut := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	// every frame header from the server is checked before gws parses it
	var checked net.Conn = wsframe.NewClientConn(nc, maxFrameBytes)
	if uncheckedFrames.Load() {
		checked = nc
	}
	ws, resp, err := gws.NewClientFromConn(conn, &gws.ClientOption{
		Addr:               c.url.String(),
		RequestHeader:      h,
		ReadMaxPayloadSize: maxFrameBytes,
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   hs,
		Recovery:           gws.Recovery,
		Logger:             wsframe.Logger{Logger: c.opts.Logger},
	}, checked)
	stopCut()
	if err != nil {
		_ = nc.Close()
		if resp != nil && resp.StatusCode != 0 {
			return nil, fmt.Errorf("client: handshake refused: %s: %w", resp.Status, err)
		}
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	conn.ws = ws
	conn.lastRead.Store(time.Now().UnixNano())
	go conn.readLoop()
	return conn, nil
}

// maxFrameBytes bounds a message from the broker.
const maxFrameBytes = 64 << 20

// uncheckedFrames, for tests only, hands frame headers to gws unchecked.
var uncheckedFrames atomic.Bool

// readLoop runs gws's read loop; a panic in it ends this connection only
// (the client reconnects), reported through OnError.
func (conn *connection) readLoop() {
	defer func() {
		if r := recover(); r != nil {
			conn.close(conn.c.recovered("the read loop", r))
			conn.finish()
		}
	}()
	conn.ws.ReadLoop()
}

// recovered logs a panic in one of the client's goroutines, with its
// stack, reports it through OnError and returns it as an error.
func (c *Client) recovered(where string, r any) error {
	err := fmt.Errorf("client: internal error in %s: %v", where, r)
	c.opts.Logger.Error("client: recovered panic", "where", where, "panic", r, "stack", string(debug.Stack()))
	c.reportError(err)
	return err
}

// guard, deferred in a goroutine of conn's, ends conn after a panic.
func (conn *connection) guard(where string) {
	if r := recover(); r != nil {
		conn.close(conn.c.recovered(where, r))
	}
}

// runGuarded is run, and closes the client if run panics (the panic is
// logged and reported: a client that cannot reconnect says so).
func (c *Client) runGuarded(conn *connection) {
	defer func() {
		if r := recover(); r != nil {
			c.shutdown(c.recovered("the connection loop", r))
		}
	}()
	c.run(conn)
}

// run keeps the client connected until Close.
func (c *Client) run(conn *connection) {
	defer close(c.done)
	failures := 0
	first := true
	for {
		if conn != nil {
			// a connection that ends soon after it was made counts as a
			// failure, so that flapping backs off too
			start := time.Now()
			c.serve(conn, first)
			if time.Since(start) >= stableAfter {
				failures = 0
			} else {
				failures++
			}
			conn, first = nil, false
		}
		select {
		case <-c.stop:
			return
		default:
		}
		if c.opts.MaxReconnects > 0 && failures >= c.opts.MaxReconnects {
			c.shutdown(fmt.Errorf("client: gave up after %d reconnect attempts", failures))
			return
		}
		wait := c.backoff(failures)
		t := time.NewTimer(wait)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		c.setStatus(Reconnecting, nil)
		if c.onAttempt != nil {
			c.onAttempt(failures)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		var err error
		conn, err = c.dial(ctx)
		cancel()
		if err != nil {
			failures++
			c.opts.Logger.Debug("client: reconnect failed", "attempt", failures, "err", err)
			c.setStatus(Disconnected, err)
		}
	}
}

// stableAfter is how long a connection must last to count as a success
// for the backoff: a broker that accepts and then drops connections is
// backed off from like one that refuses them.
const stableAfter = time.Second

// backoff is the full-jitter wait before attempt n.
func (c *Client) backoff(n int) time.Duration {
	ceil := float64(c.opts.ReconnectMin) * math.Pow(c.opts.ReconnectFactor, float64(n))
	ceil = math.Min(ceil, float64(c.opts.ReconnectMax))
	if ceil < 1 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(ceil)))
}

// serve runs one connection until it ends. The first connection was
// announced by Connect already.
func (c *Client) serve(conn *connection, first bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		conn.close(ErrClosed)
		<-conn.closed
		return
	}
	c.conn = conn
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer conn.guard("keepalive"); c.keepalive(conn) }()
	if conn.token != "" {
		wg.Add(1)
		go func() { defer wg.Done(); defer conn.guard("the token refresh"); c.refreshLoop(conn) }()
	}
	if c.opts.NoSession {
		c.epoch.Add(1) // every connection is a new session
	}
	c.sendUnsubs(conn)
	// resubscribe (idempotent for subscriptions the session kept) before
	// anything else: Connected means the subscriptions are in place
	c.resubscribe(conn, subs)
	if !first {
		c.setStatus(Connected, nil)
	}
	c.out.rewind()
	wg.Add(1)
	go func() { defer wg.Done(); defer conn.guard("the write loop"); c.writeLoop(conn) }()
	<-conn.closed
	c.out.wake()
	wg.Wait()

	c.mu.Lock()
	c.conn = nil
	waiters := c.waiters
	c.waiters = make(map[uint64]chan *protocol.Frame)
	closed := c.closed
	c.mu.Unlock()
	for _, ch := range waiters {
		close(ch) // requests on this connection end without a reply
	}
	var ce *gws.CloseError
	if errors.As(conn.closeErr, &ce) && (ce.Code == 1009 || ce.Code == 1007) {
		// the broker refused a frame outright: the culprit, the largest
		// publish sent on this connection, fails instead of being resent
		c.out.failLargestSent(fmt.Errorf("client: the broker closed the connection over a publish: %d %s", ce.Code, ce.Reason))
	}
	if !closed {
		c.setStatus(Disconnected, conn.err)
	}
}

// resubscribe sends every subscription again and waits for the answers,
// within DialTimeout. A subscription the broker now refuses is dropped and
// reported.
func (c *Client) resubscribe(conn *connection, subs []*Subscription) {
	if len(subs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	type pending struct {
		s  *Subscription
		ch chan *protocol.Frame
	}
	waits := make([]pending, 0, len(subs))
	for _, s := range subs {
		id := c.nextID.Add(1)
		ch := make(chan *protocol.Frame, 1)
		c.mu.Lock()
		c.waiters[id] = ch
		c.mu.Unlock()
		if conn.write(s.subFrame(c.opts.Codec, id)) != nil {
			return
		}
		waits = append(waits, pending{s, ch})
	}
	for _, w := range waits {
		select {
		case f, ok := <-w.ch:
			if ok && f.Op == protocol.OpErr {
				c.reportError(fmt.Errorf("client: resubscribing %q: %w", w.s.filter, &Error{Code: f.Code, Reason: f.Reason}))
				w.s.drop()
			}
		case <-ctx.Done():
			return
		case <-conn.closed:
			return
		}
	}
}

// unsub sends an unsubscribe, or keeps it for the next connection.
func (c *Client) unsub(ctx context.Context, filter, group string) error {
	f := protocol.Frame{Op: protocol.OpUnsub, Topic: filter, Group: group}
	reply, err := c.request(ctx, func(id uint64) []byte {
		f.ID, f.HasID = id, true
		return protocol.Append(c.opts.Codec, nil, &f)
	})
	if reply == nil && err == nil {
		// no connection: the broker (the session) still has it
		c.mu.Lock()
		if !c.closed {
			c.unsubs[filter+"\x00"+group] = [2]string{filter, group}
		}
		c.mu.Unlock()
	}
	var perr *Error
	if errors.As(err, &perr) && perr.Code == protocol.CodeNotSubscribed {
		return nil
	}
	return err
}

// sendUnsubs sends the unsubscribes made while disconnected.
func (c *Client) sendUnsubs(conn *connection) {
	c.mu.Lock()
	pending := c.unsubs
	c.unsubs = make(map[string][2]string)
	for k := range pending {
		if c.subs[k] != nil {
			delete(pending, k) // subscribed again meanwhile
		}
	}
	c.mu.Unlock()
	for _, u := range pending {
		f := protocol.Frame{Op: protocol.OpUnsub, Topic: u[0], Group: u[1]}
		_ = conn.write(protocol.Append(c.opts.Codec, nil, &f))
	}
}

// writeLoop sends buffered publishes on conn, in order. Publishes that are
// ready together go out in one write, as WebSocket frames of their own
// (masked here, as gws would), like a buffered writer: a burst costs one
// system call per 64 KiB rather than one per message.
func (c *Client) writeLoop(conn *connection) {
	var batch []*record
	var buf []byte
	// masking keys: unpredictable, as RFC 6455 asks, from a generator of
	// this loop's own
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	keys := mrand.NewChaCha8(seed)
	opcode := byte(opcodeOf(c.opts.Codec))
	for {
		rec := c.out.nextUnsent(conn.closed)
		if rec == nil {
			return
		}
		batch = c.out.moreUnsent(append(batch[:0], rec), writeBatchFrames, writeBatchBytes)
		var err error
		if len(batch) == 1 {
			err = conn.write(rec.frame)
		} else {
			total := 0
			for _, r := range batch {
				total += len(r.frame) + 14 // the largest frame header
			}
			buf = slices.Grow(buf[:0], total)
			for _, r := range batch {
				buf = wsframe.AppendMasked(buf, opcode, uint32(keys.Uint64()), r.frame)
			}
			err = conn.writeRaw(buf)
		}
		if err != nil {
			return
		}
		conn.lastWrite.Store(time.Now().UnixNano())
		c.out.completeWritten(batch) // fire and forget: done once written
		clear(batch)
		if cap(buf) > 4*writeBatchBytes {
			buf = nil // a large publish went by: do not keep its buffer
		}
	}
}

// At most this many publishes, and this many bytes of them, go out in one
// write (one publish larger than that goes alone).
const (
	writeBatchFrames = 256
	writeBatchBytes  = 64 << 10
)

// keepalive pings the broker and replaces a connection that went silent.
func (c *Client) keepalive(conn *connection) {
	tick := max(c.opts.PingInterval/2, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	lastPing := time.Now()
	var waiting time.Time // the first ping sent since the broker was last heard from
	for {
		select {
		case <-conn.closed:
			return
		case now := <-t.C:
			if conn.active.Swap(false) {
				conn.lastRead.Store(now.UnixNano())
			}
			heard := time.Unix(0, max(conn.lastRead.Load(), conn.lastWrite.Load()))
			silent := now.Sub(heard)
			if conn.held.Load() != 0 {
				silent = 0 // the reader waits for a handler of ours, not for the broker
			}
			// dead: silent that long, and a ping sent since the broker was
			// last heard from has gone unanswered for PingTimeout (a tick
			// that came early must not cut a connection whose ping is
			// yet to be sent)
			unanswered := waiting.After(heard) && now.Sub(waiting) >= c.opts.PingTimeout
			if silent > c.opts.PingInterval+c.opts.PingTimeout && unanswered {
				conn.close(fmt.Errorf("%w: nothing from the broker for %v", ErrTimeout, silent.Round(time.Millisecond)))
				return
			}
			// (ticks may come a little early: half a tick of slack)
			if now.Sub(lastPing) >= c.opts.PingInterval-tick/2 || silent >= c.opts.PingInterval-tick/2 {
				lastPing = now
				if !waiting.After(heard) {
					waiting = now
				}
				f := protocol.Append(c.opts.Codec, nil, &protocol.Frame{Op: protocol.OpPing})
				// async: a write stuck on a dead link must not stop the check
				conn.ws.WriteAsync(opcodeOf(c.opts.Codec), f, nil)
			}
		}
	}
}

func opcodeOf(codec protocol.Codec) gws.Opcode {
	if codec == protocol.Msgpack {
		return gws.OpcodeBinary
	}
	return gws.OpcodeText
}

// write sends one frame; a failure ends the connection.
func (conn *connection) write(frame []byte) error {
	err := conn.ws.WriteMessage(opcodeOf(conn.c.opts.Codec), frame)
	if err != nil {
		conn.close(err)
	}
	return err
}

// writeRaw writes whole, already framed WebSocket messages; a failure ends
// the connection. A write is never split between writers (the socket
// serializes whole writes), so gws's own frames go before or after.
func (conn *connection) writeRaw(b []byte) error {
	_, err := conn.ws.NetConn().Write(b)
	if err != nil {
		conn.close(err)
	}
	return err
}

// close ends the connection with a reason.
func (conn *connection) close(err error) {
	conn.kill.Do(func() {
		conn.err = err
		close(conn.dead)
		_ = conn.ws.NetConn().Close()
	})
}

// gws.Event
func (conn *connection) OnOpen(*gws.Conn) {}
func (conn *connection) OnClose(_ *gws.Conn, err error) {
	conn.closeErr = err
	conn.kill.Do(func() { conn.err = err; close(conn.dead) })
	var ce *gws.CloseError
	if errors.As(err, &ce) && conn.err == err {
		conn.err = fmt.Errorf("client: closed by the broker: %d %s", ce.Code, ce.Reason)
	}
	var refused *wsframe.Error
	if errors.As(err, &refused) && conn.err == err {
		conn.err = fmt.Errorf("client: the broker sent a frame it must not: %s", refused.Reason)
	}
	conn.finish()
}

// finish marks the read loop ended.
func (conn *connection) finish() { conn.finished.Do(func() { close(conn.closed) }) }
func (conn *connection) OnPing(socket *gws.Conn, p []byte) {
	conn.lastRead.Store(time.Now().UnixNano())
	socket.WriteAsync(gws.OpcodePong, p, nil)
}
func (conn *connection) OnPong(*gws.Conn, []byte) { conn.lastRead.Store(time.Now().UnixNano()) }
func (conn *connection) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if !conn.active.Load() { // the keepalive turns it into lastRead
		conn.active.Store(true)
	}
	codec := protocol.JSON
	if m.Opcode == gws.OpcodeBinary {
		codec = protocol.Msgpack
	}
	f := &conn.frame // reused: a topic seen in the frame before is not allocated again
	if err := protocol.DecodeAny(codec, m.Bytes(), f); err != nil {
		conn.c.reportError(fmt.Errorf("client: undecodable frame from the broker: %w", err))
		return
	}
	conn.c.handleFrame(conn, codec, f)
}

// handleFrame dispatches a frame from the broker.
func (c *Client) handleFrame(conn *connection, codec protocol.Codec, f *protocol.Frame) {
	switch f.Op {
	case protocol.OpMsg:
		c.dispatch(conn, codec, f)
	case protocol.OpAck, protocol.OpErr, protocol.OpPong:
		if !f.HasID {
			if f.Op == protocol.OpErr {
				c.brokerError(f)
			}
			return
		}
		if c.out.reply(f) {
			return
		}
		c.mu.Lock()
		ch := c.waiters[f.ID]
		delete(c.waiters, f.ID)
		c.mu.Unlock()
		if ch != nil {
			cp := *f
			cp.Data = nil
			ch <- &cp
		}
	case protocol.OpSession:
		c.opts.Logger.Debug("client: session", "id", f.Session, "resumed", f.Resumed)
		if !f.Resumed {
			c.epoch.Add(1)
		}
	}
}

// request sends a frame with an id on the current connection and waits
// for the reply. It returns (nil, nil) when the connection ended first.
func (c *Client) request(ctx context.Context, frame func(id uint64) []byte) (*protocol.Frame, error) {
	id := c.nextID.Add(1)
	ch := make(chan *protocol.Frame, 1)
	c.mu.Lock()
	conn := c.conn
	if conn == nil || c.closed {
		c.mu.Unlock()
		return nil, nil
	}
	c.waiters[id] = ch
	c.mu.Unlock()
	// written on its own goroutine: a write stuck on a dead link must not
	// hold the caller past ctx (the keepalive ends such a connection)
	go func() { defer conn.guard("a request"); _ = conn.write(frame(id)) }()
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, nil
		}
		if f.Op == protocol.OpErr {
			return f, &Error{Code: f.Code, Reason: f.Reason}
		}
		return f, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.waiters, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

// send writes a control frame on the current connection.
func (c *Client) send(frame []byte) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return ErrNotConnected
	}
	return conn.write(frame)
}

// Close closes the client: the connection, the subscriptions, and every
// publish still buffered, which fails with ErrClosed. It returns once the
// connection is closed; a handler that is running finishes on its own (no
// other starts). It may be called from a handler or a callback.
func (c *Client) Close() error {
	c.shutdown(ErrClosed)
	<-c.done
	return nil
}

func (c *Client) shutdown(reason error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	conn := c.conn
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.subs = make(map[string]*Subscription)
	c.mu.Unlock()
	close(c.stop)
	if conn != nil {
		_ = conn.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
		_ = conn.ws.WriteClose(1000, nil)
		conn.close(ErrClosed)
	}
	c.out.fail(ErrClosed)
	for _, s := range subs {
		s.stop()
	}
	c.setStatus(Closed, reason)
}

// Drain stops receiving (unsubscribing everything), lets the handlers
// finish what they hold, waits until every buffered publish was
// acknowledged, then closes. ctx bounds the wait; the client is closed
// either way.
func (c *Client) Drain(ctx context.Context) error {
	c.draining.Store(true)
	defer c.Close()
	c.mu.Lock()
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		_ = s.unsubscribe(ctx, true)
	}
	for _, s := range subs {
		select {
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.out.waitEmpty(ctx)
}
