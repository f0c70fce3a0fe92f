package broker

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/perm"
	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
	"github.com/lxzan/gws"
)

// Broker is a pub/sub broker. It is an http.Handler that upgrades requests
// to WebSocket connections speaking the ferry protocol; mount it on any
// path of an application's mux. Its methods are safe for concurrent use.
type Broker struct {
	opts     Options
	log      *slog.Logger
	index    index
	retained retainStore
	stats    counters
	cluster  Cluster // nil for a single node
	interest interest
	origins  *originRule  // nil: the same-host rule
	connRate *connLimiter // nil: no limit

	// upgraders[0] negotiates no subprotocol (none offered: JSON);
	// upgraders[1+codec] echoes that codec's subprotocol.
	upgraders [1 + protocol.NumCodecs]*gws.Upgrader

	mu       sync.Mutex
	conns    map[*conn]struct{}
	locals   map[*Subscription]struct{}
	sessions map[string]*session   // sessions with an id
	ackSess  map[*session]struct{} // sessions with acknowledged subscriptions
	closed   atomic.Bool           // set under mu, read without it
	slots    atomic.Int64          // connections held or being upgraded, under MaxConnections
	connWG   sync.WaitGroup        // read loops of live connections
	bgWG     sync.WaitGroup        // the pinger and in-process subscriptions
	lingers  lingerSet             // connections draining their peer before closing (lockedConn.Close)
	done     chan struct{}         // closed when Shutdown starts
	finished chan struct{}         // closed when Shutdown has finished

	unchecked bool // tests only: frame headers reach gws unchecked
}

// New returns a running broker, or an error naming an invalid option.
func New(opts Options) (*Broker, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{
		opts:     o,
		log:      o.Logger,
		conns:    make(map[*conn]struct{}),
		locals:   make(map[*Subscription]struct{}),
		sessions: make(map[string]*session),
		ackSess:  make(map[*session]struct{}),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	if b.connRate, err = newConnLimiter(o); err != nil {
		return nil, err
	}
	if len(o.AllowedOrigins) > 0 {
		if b.origins, err = newOriginRule(o.AllowedOrigins); err != nil {
			return nil, err
		}
		if b.origins.any {
			b.log.Warn("ferry: every origin may connect (AllowedOrigins \"*\"): any web page a user opens can use this broker")
		}
	}
	for i := range b.upgraders {
		so := &gws.ServerOption{
			ReadMaxPayloadSize: o.MaxFrameBytes,
			ReadBufferSize:     o.ReadBufferSize,
			CheckUtf8Enabled:   true,
			HandshakeTimeout:   o.HandshakeTimeout,
			Recovery:           gws.Recovery,
			Logger:             wsframe.Logger{Logger: b.log},
			NewSession:         func() gws.SessionStorage { return &conn{} },
		}
		if i > 0 {
			so.SubProtocols = []string{protocol.Codec(i - 1).Subprotocol()}
		}
		b.upgraders[i] = gws.NewUpgrader(handler{b}, so)
	}
	if o.PingInterval > 0 {
		b.bgWG.Add(1)
		go b.loop("pinger", b.pinger)
	}
	b.bgWG.Add(1)
	go b.loop("redeliverer", b.redeliverer)
	if o.Cluster != nil {
		b.cluster = o.Cluster
		b.interest.c, b.interest.b = o.Cluster, b
		if err := o.Cluster.Start(clusterNode{b}); err != nil {
			_ = b.Shutdown(context.Background())
			return nil, fmt.Errorf("ferry: cluster: %w", err)
		}
	}
	return b, nil
}

// ServeHTTP upgrades a WebSocket request. Requests that are not WebSocket
// upgrades, or that offer only subprotocols other than ferry's, are refused
// with an HTTP status and a one-line reason.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.isClosed() {
		http.Error(w, "ferry: broker is shutting down", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "ferry: WebSocket upgrade requires GET", http.StatusMethodNotAllowed)
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "ferry: this endpoint speaks WebSocket (ferry protocol v1); connect with a WebSocket client", http.StatusUpgradeRequired)
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "ferry: unsupported WebSocket version (want 13)", http.StatusUpgradeRequired)
		return
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" {
		http.Error(w, "ferry: missing Sec-WebSocket-Key", http.StatusBadRequest)
		return
	}
	if b.connRate != nil {
		if ok, wait := b.connRate.allow(r); !ok {
			b.stats.connRefused.Add(1)
			refuseRate(w, wait)
			return
		}
	}
	if !b.takeSlot() {
		http.Error(w, fmt.Sprintf("ferry: the broker already holds %d connections, the limit", b.opts.MaxConnections), http.StatusServiceUnavailable)
		return
	}
	slotKept := false
	defer func() {
		if !slotKept {
			b.releaseSlot()
		}
	}()
	if reason := b.checkOrigin(r); reason != "" {
		http.Error(w, reason, http.StatusForbidden)
		return
	}
	// before negotiate, which leaves only the codec in the subprotocols
	var id *Identity
	var perms *perm.Set
	if b.opts.Authenticate != nil {
		var err error
		if id, err = b.opts.Authenticate(r); err != nil {
			b.stats.authFailures.Add(1)
			refuseUnauthenticated(w, err)
			return
		}
		if id != nil && !id.Expires.IsZero() && !time.Now().Before(id.Expires) {
			b.stats.authFailures.Add(1)
			refuseUnauthenticated(w, fmt.Errorf("token expired at %s", id.Expires.UTC().Format(time.RFC3339)))
			return
		}
		if id == nil {
			id = &Identity{}
		}
		if b.opts.Authorize == nil {
			if perms, err = b.permissions(id); err != nil {
				b.stats.authFailures.Add(1)
				refuseUnauthenticated(w, fmt.Errorf("invalid permissions: %w", err))
				return
			}
		}
	}
	codec, up, err := b.negotiate(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, "ferry: invalid query string: "+err.Error(), http.StatusBadRequest)
		return
	}
	sessionID := query.Get("session")
	if b.opts.SessionTTL < 0 {
		sessionID = "" // sessions are disabled: the connection has none
	}
	if err := b.checkSessionID(sessionID); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// sessions of different identities never meet: a session id is the
	// identity's own
	sessionKey := sessionID
	if id != nil && sessionID != "" {
		sessionKey = id.Subject + "\x00" + sessionID
	}
	var claimed *session
	upgraded := false
	if sessionID != "" {
		ss, created, ok := b.claimSession(sessionKey)
		if !ok {
			http.Error(w, fmt.Sprintf("ferry: the broker already holds %d sessions, the limit", b.opts.MaxSessions), http.StatusServiceUnavailable)
			return
		}
		claimed = ss
		if created {
			defer func() {
				if !upgraded {
					b.unclaim(ss)
				}
			}()
		}
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "ferry: connection cannot be upgraded (no http.Hijacker)", http.StatusInternalServerError)
		return
	}
	netConn, brw, err := hj.Hijack()
	if err != nil {
		b.log.Debug("ferry: hijack failed", "err", err)
		return
	}
	lc := &lockedConn{Conn: netConn, unchecked: b.unchecked,
		check: wsframe.Checker{FromClient: true, MaxMessage: uint64(b.opts.MaxFrameBytes)}}
	if n := brw.Reader.Buffered(); n > 0 {
		p, _ := brw.Reader.Peek(n)
		lc.pre = append([]byte(nil), p...)
	}
	// the request was read already: clear the deadlines net/http set
	_ = netConn.SetDeadline(time.Time{})
	socket, err := up.UpgradeFromConn(lc, bufio.NewReaderSize(lc, b.opts.ReadBufferSize), r)
	if err != nil {
		b.log.Debug("ferry: upgrade failed", "err", err, "remote", r.RemoteAddr)
		return
	}
	upgraded, slotKept = true, true
	c := connOf(socket)
	c.init(b, socket, lc, codec, r.RemoteAddr)
	c.id, c.perm = id, perms
	var limits *Limits
	if id != nil {
		limits = id.Limits
	}
	c.applyLimits(limits)
	c.armExpiry()
	hasRoom := b.attachSession(c, sessionKey, sessionID, claimed) // before addConn: Shutdown reads c.sess
	if !hasRoom {
		c.closeWith(protocol.CloseTryAgain, fmt.Sprintf("the broker already holds %d sessions, the limit", b.opts.MaxSessions), false)
	}
	if !b.addConn(c) {
		c.sess.detach(c)
		c.closeWith(protocol.CloseGoingAway, "broker shutting down", false)
		c.q.writers.Wait()
		_ = lc.Close()
		return
	}
	go func() {
		defer b.connWG.Done()
		defer b.recoverReadLoop(c)
		socket.ReadLoop()
	}()
}

// negotiate picks the codec from Sec-WebSocket-Protocol, taking the
// client's order; no offer means JSON.
func (b *Broker) negotiate(r *http.Request) (protocol.Codec, *gws.Upgrader, error) {
	values := r.Header.Values("Sec-WebSocket-Protocol")
	if len(values) == 0 {
		return protocol.JSON, b.upgraders[0], nil
	}
	var offered []string
	bearer := false
	for _, v := range values {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			if c, ok := protocol.CodecForSubprotocol(p); ok {
				// let gws echo exactly this one (never a token)
				r.Header.Set("Sec-WebSocket-Protocol", p)
				return c, b.upgraders[1+int(c)], nil
			}
			if isBearer(p) {
				bearer = true
				continue // a credential, not a protocol: never named in a reply
			}
			offered = append(offered, p)
		}
	}
	if len(offered) == 0 && bearer {
		return 0, nil, fmt.Errorf("ferry: a %s* subprotocol entry must be offered beside %s or %s (a browser needs one to be echoed)",
			BearerSubprotocol, protocol.SubprotocolJSON, protocol.SubprotocolMsgpack)
	}
	if len(offered) == 0 {
		r.Header.Del("Sec-WebSocket-Protocol")
		return protocol.JSON, b.upgraders[0], nil
	}
	return 0, nil, fmt.Errorf("ferry: unsupported subprotocol %s: this broker speaks %s or %s",
		truncate(strings.Join(offered, ", "), 100), protocol.SubprotocolJSON, protocol.SubprotocolMsgpack)
}

// truncate cuts s to about n bytes, at a character boundary, marking the
// cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return wsframe.Truncate(s, n) + "..."
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (b *Broker) isClosed() bool { return b.closed.Load() }

func (b *Broker) addConn(c *conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return false
	}
	b.conns[c] = struct{}{}
	b.connWG.Add(1)
	b.stats.connections.Add(1)
	b.stats.connectionsTotal.Add(1)
	return true
}

func (b *Broker) removeConn(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.conns[c]; ok {
		delete(b.conns, c)
		b.stats.connections.Add(-1)
	}
}

// takeSlot reserves room for one more connection under MaxConnections
// (exact: reserved before the upgrade, released when the connection ends).
func (b *Broker) takeSlot() bool {
	if b.opts.MaxConnections == 0 {
		return true
	}
	if b.slots.Add(1) > int64(b.opts.MaxConnections) {
		b.slots.Add(-1)
		b.stats.connRefused.Add(1)
		return false
	}
	return true
}

func (b *Broker) releaseSlot() {
	if b.opts.MaxConnections != 0 {
		b.slots.Add(-1)
	}
}

func (b *Broker) snapshotConns() []*conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		out = append(out, c)
	}
	return out
}

// checkSessionID validates a session id from the query string.
func (b *Broker) checkSessionID(id string) error {
	if id == "" {
		return nil
	}
	if len(id) > 128 {
		return fmt.Errorf("ferry: session id is %d bytes, over the limit of 128", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.~:", r)) {
			return fmt.Errorf("ferry: session id %q: only letters, digits and - _ . ~ : are allowed", truncate(id, 64))
		}
	}
	return nil
}

// claimSession returns the session with that id, registering a new one
// when there is none and the limit allows it (checked and registered under
// one lock, so that the limit is exact). created tells that it is new: if
// no connection attaches to it, unclaim releases it. During shutdown the
// new session is not registered.
func (b *Broker) claimSession(id string) (ss *session, created, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.sessions[id]; old != nil && !b.closed.Load() {
		return old, false, true
	}
	if b.closed.Load() {
		return newSession(b, id), false, true
	}
	if len(b.sessions) >= b.opts.MaxSessions {
		return nil, false, false
	}
	ss = newSession(b, id)
	b.sessions[id] = ss
	return ss, true, true
}

// unclaim releases a session claimed for a connection that was not
// upgraded, unless another connection attached to it meanwhile.
func (b *Broker) unclaim(ss *session) {
	ss.mu.Lock()
	unused := ss.t == nil && len(ss.subs) == 0 && !ss.ended
	if unused {
		ss.endLocked()
	}
	ss.mu.Unlock()
	if unused {
		b.forgetSession(ss)
	}
}

// attachSession gives c its session: ss, claimed for it, resumed (a
// connection holding it is closed with 4009), or a new one if ss ended
// meanwhile; with no id, a session that ends with c. A client that gave an
// id gets a session frame first (naming the session shown, the id the
// client gave: id is the registry's key). It reports false when the session limit
// left no room for a new one (c then has a session of its own).
func (b *Broker) attachSession(c *conn, id, shown string, ss *session) bool {
	first := func(resumed bool) {
		if id != "" {
			c.q.pushForce(c.encode(&protocol.Frame{Op: protocol.OpSession, Session: shown, Resumed: resumed}))
		}
	}
	var revoke func(string) bool
	if id == "" {
		ss = newSession(b, "")
	} else if c.perm != nil || b.opts.Authorize != nil {
		// a session resumed under this credential keeps only what it allows
		revoke = func(filter string) bool { return !c.allowed(Subscribe, filter) }
	}
	for {
		c.sess = ss
		old, revoked, ok := ss.attach(c, first, revoke)
		if ok {
			for _, filter := range revoked {
				c.b.stats.forbidden.Add(1)
				c.q.pushForce(c.encode(revokedErr(filter, "")))
			}
			if oc, isConn := old.(*conn); isConn {
				oc.closeWith(protocol.CloseTakenOver, "session taken over", true)
			}
			return true
		}
		b.forgetSession(ss) // ended meanwhile: make a new one
		if ss, _, ok = b.claimSession(id); !ok {
			c.sess = newSession(b, "")
			c.sess.attach(c, nil, nil)
			return false
		}
	}
}

// forgetSession drops an ended session from the registry.
func (b *Broker) forgetSession(ss *session) {
	if ss.id == "" {
		return
	}
	b.mu.Lock()
	if b.sessions[ss.id] == ss {
		delete(b.sessions, ss.id)
	}
	b.mu.Unlock()
}

// trackAcks registers a session that has acknowledged subscriptions for
// the redelivery scan, or unregisters it.
func (b *Broker) trackAcks(ss *session, on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if on {
		b.ackSess[ss] = struct{}{}
	} else {
		delete(b.ackSess, ss)
	}
}

// redeliverer delivers again what stayed unacknowledged for AckWait.
func (b *Broker) redeliverer() {
	tick := min(max(b.opts.AckWait/4, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var list []*session
	for {
		select {
		case <-b.done:
			return
		case now := <-t.C:
			b.mu.Lock()
			list = list[:0]
			for ss := range b.ackSess {
				list = append(list, ss)
			}
			b.mu.Unlock()
			for _, ss := range list {
				ss.redeliverDue(now)
			}
			clear(list)
		}
	}
}

// pinger pings quiet connections and closes idle ones.
func (b *Broker) pinger() {
	t := time.NewTicker(b.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case now := <-t.C:
			for _, c := range b.snapshotConns() {
				quiet := now.Sub(time.Unix(0, c.lastRead.Load()))
				switch {
				case quiet >= b.opts.IdleTimeout:
					c.closeWith(protocol.CloseIdleTimeout, "idle timeout", true)
				case quiet >= b.opts.PingInterval/2:
					c.ping()
				}
			}
		}
	}
}

// Shutdown stops accepting connections, closes every connection with 1001
// after its queued frames, stops in-process subscriptions, and waits for all
// of it until ctx ends; then it cuts the remaining connections and returns
// ctx's error. A second call waits for the first to finish (or for its own
// ctx).
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		select {
		case <-b.finished:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.closed.Store(true)
	defer close(b.finished)
	close(b.done)
	locals := make([]*Subscription, 0, len(b.locals))
	for s := range b.locals {
		locals = append(locals, s)
	}
	sessions := make([]*session, 0, len(b.sessions))
	for _, ss := range b.sessions {
		sessions = append(sessions, ss)
	}
	b.mu.Unlock()
	for _, ss := range sessions {
		ss.mu.Lock()
		ended := ss.t == nil
		if ended {
			ss.endLocked() // disconnected: nothing to wait for
		}
		ss.mu.Unlock()
		if ended {
			b.forgetSession(ss)
		}
	}

	// the rest may wait (for frames being handled, queues to drain, the
	// cluster to close): ctx bounds it all
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		// no frame is handled from now on (b.closed); wait for those being
		// handled, so that every publish acknowledged so far is in the queues
		conns := b.snapshotConns()
		for _, c := range conns {
			c.handling.Lock()
			c.handling.Unlock() //lint:ignore SA2001 the lock is taken only to wait for the reader
		}
		for _, c := range conns {
			// what acknowledged subscriptions still queue is sent now,
			// beyond their windows: the broker cannot keep it
			if c.sess != nil {
				c.sess.flush(c)
			}
			c.closeWith(protocol.CloseGoingAway, "broker shutting down", false)
		}
		for _, s := range locals {
			s.Unsubscribe()
		}
		if b.cluster != nil {
			if err := b.cluster.Close(); err != nil {
				b.log.Warn("ferry: leaving the cluster", "err", err)
			}
		}
		b.connWG.Wait()
		b.bgWG.Wait()
		b.lingers.wg.Wait()
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		for _, c := range b.snapshotConns() {
			c.nc.forceClose()
		}
		b.lingers.closeAll()
		// connections end at once now (a reader waiting for room in a
		// queue is woken as its socket closes); in-process handlers that
		// are still running, and the cluster's close, finish on their own
		b.connWG.Wait()
		b.lingers.wg.Wait()
		return ctx.Err()
	}
}
