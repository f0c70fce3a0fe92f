package client

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Message is a message delivered to a subscription.
type Message struct {
	Topic string
	// Data is the message's value encoded in Codec (the client's codec).
	Data  []byte
	Codec protocol.Codec
	// Group is set on deliveries to a queue group subscription.
	Group string
	// Redelivered: an acknowledged subscription's message that may have
	// been delivered before. Retained: the topic's retained message, sent
	// when the subscription started.
	Redelivered bool
	Retained    bool
	// Mid identifies the delivery of an acknowledged subscription (0
	// otherwise).
	Mid uint64

	c       *Client
	epoch   uint64       // the broker session it came from
	settled *atomic.Bool // shared by the copies of one delivery
	// for an acknowledged delivery handed to several subscriptions: acked
	// when the last handler is done, if none failed
	votes  *atomic.Int32
	failed *atomic.Bool
}

// Decode unmarshals Data into v with the codec's library.
func (m *Message) Decode(v any) error {
	return protocol.Unmarshal(m.Codec, m.Data, v)
}

// Ack acknowledges the message of an acknowledged subscription. Only the
// first Ack or Nack of a message is sent. Without a connection it returns
// ErrNotConnected: the broker delivers the message again later.
func (m *Message) Ack() error { return m.settle(protocol.OpAck) }

// Nack asks the broker to deliver the message again at once.
func (m *Message) Nack() error { return m.settle(protocol.OpNack) }

func (m *Message) settle(op string) error {
	if m.Mid == 0 {
		return ErrNotAckable
	}
	if m.epoch != m.c.epoch.Load() {
		return nil // from a session the broker no longer has: nothing to ack
	}
	if m.settled == nil || !m.settled.CompareAndSwap(false, true) {
		return nil
	}
	err := m.c.send(protocol.Append(m.c.opts.Codec, nil, &protocol.Frame{Op: op, Mid: m.Mid, HasMid: true}))
	if err != nil {
		m.settled.Store(false)
	}
	return err
}

// Handler handles messages of a subscription, one at a time, in order, on
// the subscription's own goroutine.
type Handler func(m *Message) error

// SubOption configures a subscription.
type SubOption func(*Subscription)

// Group makes the subscription a member of a queue group.
func Group(name string) SubOption { return func(s *Subscription) { s.group = name } }

// AckMode makes the subscription acknowledged (at-least-once) with at most
// inflight unacknowledged messages (0: the broker's default, 32). A
// message is acknowledged when the handler returns nil; with an error it is
// left unacknowledged and the broker delivers it again after its ack wait.
func AckMode(inflight int) SubOption {
	return func(s *Subscription) { s.ack, s.inflight, s.autoAck = true, inflight, true }
}

// ManualAck, with AckMode, leaves acknowledging to the handler (Message.Ack
// and Nack).
func ManualAck() SubOption { return func(s *Subscription) { s.autoAck = false } }

// Pending bounds the messages waiting for this subscription's handler,
// instead of the client's PendingMessages and PendingBytes.
func Pending(messages, bytes int) SubOption {
	return func(s *Subscription) { s.maxMsgs, s.maxBytes = messages, bytes }
}

// DropWhenFull makes this subscription drop messages when its pending
// queue is full (reported as a SlowConsumerError), instead of holding the
// connection's reads (see Options.DropWhenFull).
func DropWhenFull() SubOption { return func(s *Subscription) { s.dropFull = true } }

// Subscription is a subscription of a Client. It survives reconnects.
type Subscription struct {
	c        *Client
	filter   string
	group    string
	ack      bool
	inflight int
	autoAck  bool
	handler  Handler
	maxMsgs  int // pending bounds (plain subscriptions)
	maxBytes int
	dropFull bool // drop when full instead of holding the reads

	mu      sync.Mutex
	queue   []*Message
	open    map[uint64]uint64 // mid → epoch of acknowledged messages queued or being handled
	bytes   int
	stopped bool   // no more messages are queued
	closing bool   // ready is closed
	dropped uint64 // since the last report
	total   uint64
	ready   chan struct{}
	waiting bool // the reader waits for room (signalled on room)
	// overflowing: a wait for room ran out (MaxHold); messages are
	// dropped until the handler takes one
	overflowing bool
	room        chan struct{} // the handler took a message off a full queue
	done        chan struct{} // the handler goroutine ended
}

func (s *Subscription) key() string { return s.filter + "\x00" + s.group }

// Filter returns the subscription's filter.
func (s *Subscription) Filter() string { return s.filter }

// Dropped returns how many messages the subscription dropped because its
// handler fell behind (acknowledged subscriptions: delivered again later).
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Pending returns the messages and bytes waiting for the handler.
func (s *Subscription) Pending() (messages, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue), s.bytes
}

func (s *Subscription) subFrame(c protocol.Codec, id uint64) []byte {
	f := protocol.Frame{Op: protocol.OpSub, Topic: s.filter, Group: s.group, Ack: s.ack, ID: id, HasID: true}
	if s.ack && s.inflight > 0 {
		f.Inflight, f.HasInflight = uint64(s.inflight), true
	}
	return protocol.Append(c, nil, &f)
}

// Subscribe subscribes handler to filter. When connected it waits (within
// ctx) for the broker's answer and returns its error, if any; while
// disconnected it returns at once and the subscription is made when the
// connection is back. Subscribing the same filter and group twice is an
// error.
func (c *Client) Subscribe(ctx context.Context, filter string, handler Handler, opts ...SubOption) (*Subscription, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	if err := protocol.ValidateFilter(filter, 0); err != nil {
		return nil, &Error{Code: err.Code, Reason: err.Reason}
	}
	s := &Subscription{c: c, filter: filter, handler: handler, ready: make(chan struct{}, 1), room: make(chan struct{}, 1),
		done: make(chan struct{}), maxMsgs: c.opts.PendingMessages, maxBytes: c.opts.PendingBytes, dropFull: c.opts.DropWhenFull}
	for _, o := range opts {
		o(s)
	}
	if s.maxMsgs < 1 || s.maxBytes < 1 {
		return nil, errors.New("client: Pending needs positive bounds")
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.subs[s.key()] != nil {
		c.mu.Unlock()
		return nil, &Error{Code: protocol.CodeBadFrame, Reason: "already subscribed to " + filter}
	}
	c.subs[s.key()] = s
	c.subsGen.Add(1)
	c.subWG.Add(1)
	c.mu.Unlock()
	go s.run()
	_, err := c.request(ctx, func(id uint64) []byte { return s.subFrame(c.opts.Codec, id) })
	if err != nil {
		s.drop()
		var perr *Error
		if !errors.As(err, &perr) {
			// the sub may have reached the broker: take it back, without
			// holding the caller
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
				defer cancel()
				_ = c.unsub(ctx, s.filter, s.group)
			}()
		}
		return nil, err
	}
	return s, nil
}

// Unsubscribe ends the subscription; messages already queued for the
// handler are discarded.
func (s *Subscription) Unsubscribe(ctx context.Context) error { return s.unsubscribe(ctx, false) }

// unsubscribe tells the broker, then stops the subscription; with drain
// the handler finishes the queued messages first.
func (s *Subscription) unsubscribe(ctx context.Context, drain bool) error {
	c := s.c
	c.mu.Lock()
	if c.subs[s.key()] == s {
		delete(c.subs, s.key())
		c.subsGen.Add(1)
	}
	c.mu.Unlock()
	var err error
	if !drain || !s.ack {
		// (draining an acknowledged subscription keeps it at the broker,
		// with what it still holds, for the session)
		err = c.unsub(ctx, s.filter, s.group)
	}
	if drain {
		s.finish()
	} else {
		s.stop()
	}
	return err
}

// drop removes a subscription the broker refused.
func (s *Subscription) drop() {
	c := s.c
	c.mu.Lock()
	if c.subs[s.key()] == s {
		delete(c.subs, s.key())
		c.subsGen.Add(1)
	}
	c.mu.Unlock()
	s.stop()
}

// stop ends the handler goroutine, discarding the queue.
func (s *Subscription) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.queue, s.bytes = nil, 0
	s.closeReadyLocked()
}

// finish ends the handler goroutine after the queued messages; nothing
// more is queued.
func (s *Subscription) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.closeReadyLocked()
}

func (s *Subscription) closeReadyLocked() {
	if !s.closing {
		s.closing = true
		close(s.ready)
	}
}

// enqueue hands m to the handler goroutine. When a plain subscription's
// pending queue is full it waits for room, holding conn's reads (the
// broker then holds the publishers), or drops m with dropFull. It runs on
// conn's reader.
func (s *Subscription) enqueue(conn *connection, m *Message) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	if m.Mid != 0 {
		// a redelivery (a resumed session) of a message still here is skipped
		if ep, ok := s.open[m.Mid]; ok && ep == m.epoch && m.Redelivered {
			s.mu.Unlock()
			return
		}
		if s.open == nil {
			s.open = make(map[uint64]uint64)
		}
		s.open[m.Mid] = m.epoch
	}
	size := len(m.Data) + len(m.Topic) + 64
	// an acknowledged subscription is bounded by its window at the broker:
	// dropping here would only delay the message by an ack wait
	for !s.ack && len(s.queue) > 0 && (len(s.queue) >= s.maxMsgs || s.bytes+size > s.maxBytes) {
		if !s.dropFull && !s.overflowing {
			s.waiting = true
			s.mu.Unlock()
			room, ok := s.waitRoom(conn)
			s.mu.Lock()
			s.waiting = false
			if !ok || s.stopped {
				s.mu.Unlock()
				return
			}
			if !room {
				// no room for MaxHold: drop until the handler makes room
				s.overflowing = true
			}
			continue
		}
		s.dropped++
		s.total++
		first := s.dropped == 1
		s.mu.Unlock()
		if first {
			// reported once per episode; the count arrives with the next report
			s.c.reportError(&SlowConsumerError{Filter: s.filter, Group: s.group, Dropped: 1})
		}
		return
	}
	var report uint64
	if s.dropped > 1 {
		report = s.dropped - 1
	}
	s.dropped = 0
	s.queue = append(s.queue, m)
	s.bytes += size
	select { // under the lock: ready is closed only with it held
	case s.ready <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	if report > 0 {
		s.c.reportError(&SlowConsumerError{Filter: s.filter, Group: s.group, Dropped: report})
	}
}

// waitRoom waits, at most MaxHold, until the handler makes room: room is
// false when it did not. ok is false when the subscription ended or the
// connection is being closed.
func (s *Subscription) waitRoom(conn *connection) (room, ok bool) {
	conn.held.Store(time.Now().UnixNano()) // the keepalive does not count this silence
	defer func() {
		conn.lastRead.Store(time.Now().UnixNano())
		conn.held.Store(0)
	}()
	t := time.NewTimer(s.c.opts.MaxHold)
	defer t.Stop()
	select {
	case <-s.room:
		return true, true
	case <-t.C:
		return false, true
	case <-s.done:
	case <-conn.dead:
	}
	return false, false
}

func (s *Subscription) run() {
	defer s.c.subWG.Done()
	defer close(s.done)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.queue = nil
			s.mu.Unlock()
			if _, ok := <-s.ready; !ok {
				s.mu.Lock()
				empty := len(s.queue) == 0
				s.mu.Unlock()
				if empty {
					return
				}
			}
			continue
		}
		m := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.bytes -= len(m.Data) + len(m.Topic) + 64
		s.overflowing = false // room again: the reader may wait for it
		if s.waiting {
			select {
			case s.room <- struct{}{}:
			default:
			}
		}
		s.mu.Unlock()
		err := s.call(m)
		if m.Mid != 0 {
			s.mu.Lock()
			if s.open[m.Mid] == m.epoch {
				delete(s.open, m.Mid)
			}
			s.mu.Unlock()
		}
		if m.Mid != 0 && s.autoAck {
			if err != nil {
				m.failed.Store(true)
			}
			// the last of the subscriptions sharing the delivery decides
			if m.votes.Add(-1) == 0 && !m.failed.Load() {
				_ = m.Ack()
			}
		}
	}
}

func (s *Subscription) call(m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.c.opts.Logger.Error("client: panic in handler", "filter", s.filter, "panic", r, "stack", string(debug.Stack()))
			err = errPanic
		}
	}()
	return s.handler(m)
}

var errPanic = &Error{Code: protocol.CodeInternal, Reason: "handler panicked"}

// dispatch gives a msg frame to the subscriptions it is for: the group's
// subscription for a group delivery, else every plain or acknowledged
// subscription whose filter matches.
func (c *Client) dispatch(conn *connection, codec protocol.Codec, f *protocol.Frame) {
	// the targets of the topic before, while the subscriptions are the
	// same: a connection often receives one topic after another
	gen := c.subsGen.Load()
	targets := conn.targets
	if f.Group != "" || f.Topic != conn.targetsTopic || gen != conn.targetsGen {
		targets = c.match(targets[:0], f)
		conn.targets, conn.targetsTopic, conn.targetsGen = targets, f.Topic, gen
		if f.Group != "" {
			conn.targetsTopic = "" // not cached: a group's member is picked per delivery
		}
	}
	var settled, failed *atomic.Bool
	var votes *atomic.Int32
	if f.HasMid {
		// an acknowledged delivery, shared by the subscriptions it matches
		settled, votes, failed = new(atomic.Bool), new(atomic.Int32), new(atomic.Bool)
		for _, s := range targets {
			if s.ack && s.autoAck {
				votes.Add(1)
			}
		}
	}
	epoch := c.epoch.Load()
	for _, s := range targets {
		// each subscription gets its own copy: handlers may keep or change it
		var data []byte
		if f.Data != nil {
			data = make([]byte, len(f.Data))
			copy(data, f.Data)
		}
		m := &Message{Topic: f.Topic, Data: data, Codec: codec, Group: f.Group,
			Redelivered: f.Redelivered, Retained: f.Retained, c: c, epoch: epoch}
		if s.ack {
			m.Mid, m.settled, m.votes, m.failed = f.Mid, settled, votes, failed
		}
		s.enqueue(conn, m)
	}
}

// match appends to targets the subscriptions a msg frame is for.
func (c *Client) match(targets []*Subscription, f *protocol.Frame) []*Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		// a group delivery names its group's filter (brokers that do not
		// are matched by the group's name and the topic)
		if s.group == f.Group && (f.Group != "" && f.Filter != "" && s.filter == f.Filter ||
			(f.Group == "" || f.Filter == "") && protocol.Match(s.filter, f.Topic)) {
			targets = append(targets, s)
			if f.Group != "" {
				break
			}
		}
	}
	return targets
}
