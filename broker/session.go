package broker

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// A session holds a client's subscriptions. Every connection and every
// in-process subscription has one. A session with an id outlives its
// connection by Options.SessionTTL, keeping its acknowledged subscriptions
// (their queues and unacknowledged deliveries) for the client to resume.
//
// The lock order of mu and emu is in the package doc (doc.go).
type session struct {
	b  *Broker
	id string // "" for a session that ends with its connection

	mu      sync.Mutex
	t       transport // attached transport; nil while disconnected
	subs    map[string]*subscription
	mids    map[uint64]*subscription // unacknowledged deliveries
	nextMid uint64
	expire  *time.Timer
	gen     uint64 // counts attaches: a stale expiry timer sees it changed
	ended   bool
	away    uint64 // messages dropped while disconnected, reported on resume
	acks    int    // acknowledged subscriptions, for the redelivery scan
}

// transport is what a session delivers through: a WebSocket connection or
// an in-process handler.
type transport interface {
	// send queues a live delivery of a plain subscription without
	// blocking (pushFull comes with a channel to wait on).
	send(d *delivery, g *group) (pushResult, <-chan struct{})
	// sendStored queues a delivery that the broker keeps (of an
	// acknowledged subscription, or handed over in a group) if the queue
	// has room (or o.force). A message that cannot be sent in the
	// transport's codec is reported to the client instead: sendUnsendable.
	sendStored(m *stored, o msgOpts) sendResult
	// sendRetained queues a retained message for a new plain subscription,
	// waiting for room: the subscriber reads them at its own pace.
	sendRetained(m *stored)
	// overflow applies the slow-consumer policy for a full queue.
	overflow()
	// drop counts n messages dropped for this transport and reports them.
	drop(n uint64)
	// draining reports whether the queue, if full, has drained within
	// quiet and been full for less than limit (drainWatch.draining).
	draining(quiet, limit time.Duration) bool
}

// stored is a message the broker keeps beyond one publish. Immutable.
type stored struct {
	topic string
	codec protocol.Codec
	data  []byte
}

// size is what a stored message counts against byte bounds: its data and
// topic, and roughly what holds them.
func (m *stored) size() int { return len(m.data) + len(m.topic) + 64 }

// subscription is one subscription of a session: plain, acknowledged, or
// a queue-group member of either kind.
type subscription struct {
	sess   *session
	t      transport // a plain subscription's transport, fixed
	filter string
	key    string // filter, plus "\x00" and the group name for members
	group  *group
	node   *node // index position of a direct subscription (index.mu)
	pos    int
	gpos   int       // position in group.members (group.mu)
	ack    *ackState // acknowledged subscriptions only (sess.mu)

	// Until the sub's ack and retained messages are queued, live
	// deliveries of a plain subscription wait in early.
	primed     atomic.Bool
	emu        sync.Mutex
	early      []*stored
	earlyBytes int
	removed    bool // sess.mu
}

// ackState is the window and queue of an acknowledged subscription.
type ackState struct {
	window       int
	inflight     []*inflight // in send order, so by due time too
	pending      []queued    // waiting for the window
	pendingBytes int         // of the live messages in pending
	retainedN    int         // retained messages at the front of pending, outside the bounds
	overflowing  bool
	space        chan struct{}
}

type inflight struct {
	group    *group // nil: not a queue group's
	mid      uint64
	m        *stored
	retained bool
	due      time.Time
}

type sendResult uint8

const (
	sent sendResult = iota
	sendFull
	sendUnsendable
	sendClosed
)

type queued struct {
	m           *stored
	retained    bool
	redelivered bool // handed over from a group member that left
}

func subKey(filter, group string) string {
	if group == "" {
		return filter
	}
	return filter + "\x00" + group
}

func newSession(b *Broker, id string) *session {
	return &session{b: b, id: id, subs: make(map[string]*subscription), mids: make(map[uint64]*subscription)}
}

// push delivers d to s without blocking.
func (s *subscription) push(d *delivery) (pushResult, <-chan struct{}) {
	if s.ack != nil {
		return s.sess.offer(s, queued{m: d.stored()}, true)
	}
	if !s.primed.Load() {
		if r, held := s.pushEarly(d); held {
			return r, nil
		}
	}
	return s.t.send(d, s.group)
}

// pushNow delivers d to s only if s can take it at once: an acknowledged
// subscription with room in its window (not just in its queue). Queue
// groups prefer such members.
func (s *subscription) pushNow(d *delivery) (pushResult, <-chan struct{}) {
	if s.ack != nil {
		return s.sess.offer(s, queued{m: d.stored()}, false)
	}
	return s.push(d)
}

// pushStored delivers a kept message (a group's hand-over) to s.
func (s *subscription) pushStored(m *stored) (pushResult, <-chan struct{}) {
	if s.ack != nil {
		return s.sess.offer(s, queued{m: m, redelivered: true}, true)
	}
	switch s.t.sendStored(m, msgOpts{redelivered: true, group: s.group}) {
	case sent, sendUnsendable:
		return pushed, nil
	case sendClosed:
		return pushClosed, nil
	}
	return pushRefuse, nil
}

func (s *subscription) pushEarly(d *delivery) (pushResult, bool) {
	s.emu.Lock()
	defer s.emu.Unlock()
	if s.primed.Load() {
		return 0, false
	}
	m := d.stored()
	if s.earlyBytes > 0 && s.earlyBytes+m.size() > s.sess.b.opts.QueueBytes {
		return pushRefuse, true
	}
	s.early = append(s.early, m)
	s.earlyBytes += m.size()
	return pushed, true
}

// draining reports whether s's full queue is draining: publishers keep
// waiting for it. Acknowledged subscriptions have AckStall instead.
func (s *subscription) draining(quiet, limit time.Duration) bool {
	return s.ack == nil && s.t.draining(quiet, limit)
}

// overflow applies the policy when s stayed full past the stall.
func (s *subscription) overflow() {
	if s.ack != nil {
		s.sess.ackOverflow(s)
		return
	}
	s.t.overflow()
}

// activate starts deliveries of a new subscription once its ack is queued:
// retained messages first, then what arrived meanwhile, then live ones.
func (s *subscription) activate(retained []*stored) {
	if s.ack != nil {
		ss := s.sess
		ss.mu.Lock()
		defer ss.mu.Unlock()
		if len(retained) > 0 {
			// retained messages go first, outside the queue's bounds
			front := make([]queued, 0, len(retained)+len(s.ack.pending))
			for _, m := range retained {
				front = append(front, queued{m: m, retained: true})
			}
			s.ack.pending = append(front, s.ack.pending...)
			s.ack.retainedN = len(retained)
		}
		s.primed.Store(true)
		ss.pumpLocked(s)
		return
	}
	for _, m := range retained {
		s.t.sendRetained(m)
	}
	s.emu.Lock()
	for _, m := range s.early {
		s.t.sendStored(m, msgOpts{force: true}) // early is bounded already
	}
	s.early, s.earlyBytes = nil, 0
	s.primed.Store(true)
	s.emu.Unlock()
}

// subscribe adds a subscription for transport t. It returns the existing
// one (and true) when the session already has that filter and group.
// Retained messages matching the filter are returned for activate.
func (ss *session) subscribe(t transport, filter, group string, ack bool, window, maxSubs int) (*subscription, bool, []*stored, *protocol.Error) {
	b := ss.b
	key := subKey(filter, group)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t != t || ss.ended {
		return nil, false, nil, protocol.Errorf(protocol.CodeInternal, "sub: the connection is closing")
	}
	if s := ss.subs[key]; s != nil {
		if (s.ack != nil) != ack {
			kind := map[bool]string{true: "an acknowledged", false: "a plain"}[s.ack != nil]
			return nil, false, nil, protocol.Errorf(protocol.CodeBadFrame, "sub: already %s subscription to %q; unsubscribe first to change its kind", kind, filter)
		}
		if s.ack != nil {
			s.ack.window = window
			ss.pumpLocked(s)
		}
		return s, true, nil, nil
	}
	if max := maxSubs; max > 0 && len(ss.subs) >= max {
		return nil, false, nil, protocol.Errorf(protocol.CodeLimit, "sub: this connection already has %d subscriptions, the limit", max)
	}
	s := &subscription{sess: ss, t: t, filter: filter, key: key}
	if ack {
		s.ack = &ackState{window: window}
		if ss.acks == 0 {
			b.trackAcks(ss, true)
		}
		ss.acks++
	}
	ss.subs[key] = s
	b.stats.subscriptions.Add(1)
	var retained []*stored
	if group != "" {
		s.primed.Store(true)
		b.index.addMember(s, group)
	} else {
		retained = b.index.addWithRetained(s, &b.retained)
	}
	b.interest.add(filter, group, 1)
	return s, false, retained, nil
}

// filters lists the filter and the group of each subscription of the
// session.
func (ss *session) filters() (out [][2]string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for key, s := range ss.subs {
		group := ""
		if len(key) > len(s.filter) {
			group = key[len(s.filter)+1:]
		}
		out = append(out, [2]string{s.filter, group})
	}
	return out
}

// unsubscribe removes the subscription with that key.
func (ss *session) unsubscribe(t transport, key string) bool {
	ss.mu.Lock()
	s := ss.subs[key]
	if s == nil || ss.t != t {
		ss.mu.Unlock()
		return false
	}
	handover := ss.removeLocked(s)
	ss.mu.Unlock()
	ss.b.handOver(s, handover)
	return true
}

// removeLocked takes s out of the session and the index. A group member's
// unfinished messages are returned for handOver (done without ss.mu).
func (ss *session) removeLocked(s *subscription) []*stored {
	b := ss.b
	delete(ss.subs, s.key)
	s.removed = true
	b.stats.subscriptions.Add(-1)
	if s.group != nil {
		b.interest.add(s.filter, s.group.name, -1)
		b.index.removeMember(s)
	} else {
		b.interest.add(s.filter, "", -1)
		b.index.remove(s)
	}
	if s.ack == nil {
		return nil
	}
	var left []*stored
	for _, in := range s.ack.inflight {
		delete(ss.mids, in.mid)
		left = append(left, in.m)
	}
	for _, q := range s.ack.pending {
		if !q.retained {
			left = append(left, q.m)
		}
	}
	s.ack.inflight, s.ack.pending, s.ack.pendingBytes = nil, nil, 0
	if s.ack.space != nil {
		close(s.ack.space)
		s.ack.space = nil
	}
	ss.acks--
	if ss.acks == 0 {
		b.trackAcks(ss, false)
	}
	if s.group == nil {
		if len(left) > 0 {
			b.stats.dropped.Add(uint64(len(left)))
		}
		return nil
	}
	return left
}

// offer queues m on an acknowledged subscription: sent at once if the
// window has room, else (with queue) kept in the subscription's bounded
// queue; without queue a full window is pushRefuse.
func (ss *session) offer(s *subscription, q queued, queue bool) (pushResult, <-chan struct{}) {
	b := ss.b
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s.removed || ss.ended {
		return pushClosed, nil
	}
	a := s.ack
	if len(a.pending) == 0 && len(a.inflight) < a.window && ss.t != nil && s.primed.Load() && ss.sendNewLocked(s, q) {
		return pushed, nil
	}
	if !queue {
		return pushRefuse, nil
	}
	if len(a.pending)-a.retainedN >= b.opts.AckQueue || (a.pendingBytes > 0 && a.pendingBytes+q.m.size() > b.opts.QueueBytes) {
		if a.overflowing {
			return pushRefuse, nil
		}
		if a.space == nil {
			a.space = make(chan struct{})
		}
		return pushFull, a.space
	}
	a.pending = append(a.pending, q)
	a.pendingBytes += q.m.size()
	return pushed, nil
}

// sendNewLocked sends q with a new mid. It reports false when the
// connection's queue is full (q stays the caller's, to send later); a
// message that cannot be sent in the client's codec is reported to the
// client and counts as handled.
func (ss *session) sendNewLocked(s *subscription, q queued) bool {
	return ss.sendNewForce(s, q, false)
}

func (ss *session) sendNewForce(s *subscription, q queued, force bool) bool {
	mid := ss.nextMid + 1
	switch ss.t.sendStored(q.m, msgOpts{mid: mid, redelivered: q.redelivered, retained: q.retained, group: s.group, force: force}) {
	case sent:
	case sendUnsendable:
		return true
	default:
		return false
	}
	ss.nextMid = mid
	in := &inflight{group: s.group, mid: mid, m: q.m, retained: q.retained, due: time.Now().Add(ss.b.opts.AckWait)}
	s.ack.inflight = append(s.ack.inflight, in)
	ss.mids[mid] = s
	return true
}

// pumpLocked moves queued messages into the window while it has room and
// the connection's queue takes them.
func (ss *session) pumpLocked(s *subscription) {
	a := s.ack
	for ss.t != nil && s.primed.Load() && len(a.pending) > 0 && len(a.inflight) < a.window {
		q := a.pending[0]
		if !ss.sendNewLocked(s, q) {
			break // the redelivery tick pumps again
		}
		a.pending[0] = queued{}
		a.pending = a.pending[1:]
		if q.retained {
			a.retainedN--
		} else {
			a.pendingBytes -= q.m.size()
		}
	}
	if len(a.pending) == 0 {
		a.pending = nil // let the backing array go
	}
	if a.overflowing && len(a.pending)-a.retainedN <= ss.b.opts.AckQueue/2 && a.pendingBytes <= ss.b.opts.QueueBytes/2 {
		a.overflowing = false
	}
	if a.space != nil {
		close(a.space)
		a.space = nil
	}
}

// ackOverflow applies the policy to an acknowledged subscription whose
// queue stayed full: the message is dropped, counted and reported, and under
// the disconnect policy the connection is closed.
func (ss *session) ackOverflow(s *subscription) {
	ss.mu.Lock()
	s.ack.overflowing = true
	t := ss.t
	if t == nil {
		ss.away++ // reported when the session is resumed
	}
	ss.mu.Unlock()
	ss.b.stats.dropped.Add(1)
	if t == nil {
		return
	}
	if _, isConn := t.(*conn); isConn && ss.b.opts.SlowConsumer == Disconnect {
		t.overflow()
	} else {
		t.drop(1) // in-process subscriptions are never disconnected
	}
}

// ack settles an unacknowledged delivery. It reports false for a mid that
// is not outstanding.
func (ss *session) ack(t transport, mid uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.mids[mid]
	if s == nil || ss.t != t {
		return false
	}
	delete(ss.mids, mid)
	a := s.ack
	if i := slices.IndexFunc(a.inflight, func(in *inflight) bool { return in.mid == mid }); i >= 0 {
		a.inflight = slices.Delete(a.inflight, i, i+1)
	}
	ss.pumpLocked(s)
	return true
}

// nack delivers an unacknowledged delivery again at once.
func (ss *session) nack(t transport, mid uint64) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.mids[mid]
	if s == nil || ss.t != t {
		return false
	}
	a := s.ack
	i := slices.IndexFunc(a.inflight, func(in *inflight) bool { return in.mid == mid })
	if i < 0 {
		return false // not out now (as in ack): nothing to deliver again
	}
	in := a.inflight[i]
	// a nack while the connection's queue is full is ignored: the ack
	// wait brings the message back
	if ss.redeliverLocked(in) {
		a.inflight = append(slices.Delete(a.inflight, i, i+1), in)
	}
	return true
}

// redeliverLocked sends in again, if the connection's queue has room.
func (ss *session) redeliverLocked(in *inflight) bool {
	if ss.t.sendStored(in.m, msgOpts{mid: in.mid, redelivered: true, retained: in.retained, group: in.group}) != sent {
		return false
	}
	in.due = time.Now().Add(ss.b.opts.AckWait)
	ss.b.stats.redelivered.Add(1)
	return true
}

// redeliverDue delivers again what was not acknowledged within AckWait.
func (ss *session) redeliverDue(now time.Time) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t == nil {
		return
	}
	for _, s := range ss.subs {
		a := s.ack
		if a == nil {
			continue
		}
		// inflight is in due order: redelivered ones go to the back
		for n := len(a.inflight); n > 0 && now.After(a.inflight[0].due); n-- {
			in := a.inflight[0]
			if !ss.redeliverLocked(in) {
				break // the connection's queue is full: next tick
			}
			a.inflight = append(a.inflight[1:], in)
		}
		ss.pumpLocked(s) // after a full connection queue held it back
	}
}

// attach connects transport t to the session. A transport already attached
// (another connection with the same session id) is returned, to be closed
// by the caller: the newer connection takes over. first, if set, runs
// before any delivery can reach t, with whether the session had
// subscriptions to resume. Unacknowledged deliveries are then delivered
// again and the queues resume. ok is false for a session that ended.
// Subscriptions whose filter revoke reports (when set) are removed first,
// before anything of theirs is delivered again; their filters are
// returned.
func (ss *session) attach(t transport, first func(resumed bool), revoke func(filter string) bool) (old transport, revoked []string, ok bool) {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return nil, nil, false
	}
	if ss.expire != nil {
		ss.expire.Stop()
		ss.expire = nil
	}
	ss.gen++
	old = ss.t
	var handovers [][]*stored
	var moved []*subscription
	if old != nil {
		for _, s := range ss.subs {
			if !ss.keeps(s) {
				handovers = append(handovers, ss.removeLocked(s))
				moved = append(moved, s)
			}
		}
	}
	resumed := len(ss.subs) > 0
	if revoke != nil {
		for _, s := range ss.subs {
			if revoke(s.filter) {
				handovers = append(handovers, ss.removeLocked(s))
				moved = append(moved, s)
				revoked = append(revoked, s.filter)
			}
		}
	}
	if first != nil {
		first(resumed)
	}
	ss.t = t
	if ss.away > 0 {
		t.drop(ss.away) // an overflow report comes first
		ss.away = 0
	}
	for _, s := range ss.subs {
		if s.ack == nil {
			continue
		}
		for _, in := range s.ack.inflight {
			ss.redeliverLocked(in)
		}
		ss.pumpLocked(s)
	}
	ss.mu.Unlock()
	for i, s := range moved {
		ss.b.handOver(s, handovers[i])
	}
	return old, revoked, true
}

// keeps reports whether s survives its connection: acknowledged, direct
// subscriptions of a session with an id.
func (ss *session) keeps(s *subscription) bool {
	return ss.id != "" && ss.b.opts.SessionTTL > 0 && s.ack != nil && s.group == nil
}

// detach disconnects transport t. What the session does not keep is
// removed; a session that keeps nothing ends, one that keeps something
// ends after SessionTTL unless resumed.
func (ss *session) detach(t transport) {
	ss.mu.Lock()
	if ss.t != t {
		ss.mu.Unlock()
		return // taken over
	}
	ss.t = nil
	var handovers [][]*stored
	var moved []*subscription
	for _, s := range ss.subs {
		if !ss.keeps(s) {
			handovers = append(handovers, ss.removeLocked(s))
			moved = append(moved, s)
		}
	}
	keep := len(ss.subs) > 0 && !ss.b.isClosed()
	if keep {
		gen := ss.gen
		ss.expire = time.AfterFunc(ss.b.opts.SessionTTL, func() {
			ss.b.runRecovered("session expiry", func() { ss.timeout(gen) })
		})
	} else {
		ss.endLocked()
	}
	ss.mu.Unlock()
	for i, s := range moved {
		ss.b.handOver(s, handovers[i])
	}
	if !keep {
		ss.b.forgetSession(ss)
	}
}

// timeout ends a session that was not resumed within SessionTTL of the
// disconnection that armed it (gen).
func (ss *session) timeout(gen uint64) {
	ss.mu.Lock()
	if ss.t != nil || ss.ended || ss.gen != gen {
		ss.mu.Unlock()
		return
	}
	ss.endLocked()
	ss.mu.Unlock()
	ss.b.forgetSession(ss)
}

// endLocked removes every subscription; the session is gone.
func (ss *session) endLocked() {
	for _, s := range ss.subs {
		ss.removeLocked(s) // kept subscriptions are never group members
	}
	ss.ended = true
	if ss.expire != nil {
		ss.expire.Stop()
		ss.expire = nil
	}
}

// flush sends every queued message of the acknowledged subscriptions to t
// at once, ignoring the windows: the broker is shutting down.
func (ss *session) flush(t transport) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.t != t {
		return
	}
	for _, s := range ss.subs {
		if s.ack == nil {
			continue
		}
		for _, q := range s.ack.pending {
			if !ss.sendNewForce(s, q, true) {
				ss.b.stats.dropped.Add(1)
			}
		}
		s.ack.pending, s.ack.pendingBytes, s.ack.retainedN = nil, 0, 0
	}
}

// queuedMessages counts what the session holds in acknowledged queues and
// windows (for tests and stats).
func (ss *session) queuedMessages() (pending, inflight int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.subs {
		if s.ack != nil {
			pending += len(s.ack.pending)
			inflight += len(s.ack.inflight)
		}
	}
	return pending, inflight
}
