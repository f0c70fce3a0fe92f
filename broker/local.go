package broker

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Handler handles a message of an in-process subscription. Its Data is
// shared with other subscriptions and must not be modified. In an acknowledged subscription, returning nil
// acknowledges the message; an error leaves it unacknowledged, so it is
// delivered again after Options.AckWait. Otherwise a returned error is
// logged.
type Handler func(m *Message) error

// SubOption configures an in-process subscription.
type SubOption func(*subOptions)

type subOptions struct {
	group    string
	ack      bool
	inflight int
}

// WithGroup makes the subscription a member of the named queue group: each
// message goes to one member of the group.
func WithGroup(name string) SubOption { return func(o *subOptions) { o.group = name } }

// WithAck makes the subscription acknowledged (at-least-once): at most
// inflight messages (0: DefaultInflight) are handed to the handler before it
// has returned nil for them.
func WithAck(inflight int) SubOption {
	return func(o *subOptions) { o.ack, o.inflight = true, inflight }
}

// Subscription is an in-process subscription. Its handler runs on a
// goroutine of its own, one message at a time in publish order, never on
// the publisher's goroutine. Messages wait in a queue bounded by
// Options.QueueBytes; when it is full (after the brief publish stall)
// messages are dropped and counted in Stats().Dropped. Acknowledged
// subscriptions are bounded by their window and Options.AckQueue instead.
type Subscription struct {
	b       *Broker
	filter  string
	handler Handler
	sess    *session

	mu         sync.Mutex
	q          boundedQueue[localItem]
	closed     bool
	ready      chan struct{} // signalled when the queue gets a message
	dropped    uint64
	queuedMids map[uint64]int // mids with a delivery in queue
	once       sync.Once
}

type localItem struct {
	m   *Message
	mid uint64
}

func (it localItem) size() int { return len(it.m.Data) + len(it.m.Topic) + 64 }

// Subscribe registers handler for messages on topics matching filter.
func (b *Broker) Subscribe(filter string, handler Handler, opts ...SubOption) (*Subscription, error) {
	var o subOptions
	for _, opt := range opts {
		opt(&o)
	}
	if handler == nil {
		return nil, fmt.Errorf("ferry: Subscribe: nil handler")
	}
	if err := protocol.ValidateFilter(filter, b.opts.MaxTopicBytes); err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrBadTopic, err)
	}
	if err := validateGroup(o.group, b.opts.MaxTopicBytes); err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrBadTopic, err)
	}
	window := o.inflight
	if window <= 0 {
		window = DefaultInflight
	}
	window = min(window, b.opts.MaxInflight)
	s := newSubscription(b, filter, handler)
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.locals[s] = struct{}{}
	b.bgWG.Add(1)
	b.mu.Unlock()
	sub, _, retained, perr := s.sess.subscribe(s, filter, o.group, o.ack, window, b.opts.MaxSubscriptions)
	go b.loop("in-process subscription", s.run)
	if perr != nil {
		s.Unsubscribe()
		return nil, fmt.Errorf("ferry: Subscribe: %w", perr)
	}
	if err := b.interest.sync(filter, o.group); err != nil {
		s.Unsubscribe()
		return nil, fmt.Errorf("ferry: Subscribe: the cluster cannot bring this subscription its messages: %w", err)
	}
	sub.activate(retained)
	return s, nil
}

// newSubscription returns a subscription attached to a session of its own,
// its handler goroutine not yet started.
func newSubscription(b *Broker, filter string, handler Handler) *Subscription {
	s := &Subscription{b: b, filter: filter, handler: handler, ready: make(chan struct{}, 1)}
	s.q.limit = b.opts.QueueBytes
	s.sess = newSession(b, "")
	s.sess.attach(s, nil, nil)
	return s
}

// Filter returns the subscription's filter.
func (s *Subscription) Filter() string { return s.filter }

// Dropped returns how many messages this subscription dropped because its
// queue was full.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Unsubscribe stops the subscription and discards its queued messages
// (a queue-group member's unacknowledged ones go to the rest of its group).
// A handler call that is running, or about to start with a message already
// taken from the queue, may still run after it returns; no other will. It
// is safe to call more than once, also from the handler.
func (s *Subscription) Unsubscribe() {
	s.once.Do(func() {
		s.sess.detach(s)
		s.mu.Lock()
		s.closed = true
		s.q.discard(localItem.size)
		s.q.wake()
		s.mu.Unlock()
		select {
		case s.ready <- struct{}{}:
		default:
		}
		s.b.mu.Lock()
		delete(s.b.locals, s)
		s.b.mu.Unlock()
	})
}

// enqueue adds it: always with force, else only within the bound.
func (s *Subscription) enqueue(it localItem, force bool) (pushResult, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return pushClosed, nil
	}
	n := it.size()
	if !force && !s.q.fits(n) {
		return s.q.full(true)
	}
	if it.mid != 0 {
		if s.queuedMids == nil {
			s.queuedMids = make(map[uint64]int)
		}
		s.queuedMids[it.mid]++
	}
	s.q.add(it, n)
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return pushed, nil
}

func message(m *stored, redelivered, retained bool) *Message {
	return &Message{Topic: m.topic, Data: m.data, Codec: m.codec, Redelivered: redelivered, Retained: retained}
}

func (s *Subscription) hasQueued(mid uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queuedMids[mid] > 0
}

// send implements transport.
func (s *Subscription) send(d *delivery, _ *group) (pushResult, <-chan struct{}) {
	return s.enqueue(localItem{m: message(d.stored(), false, false)}, false)
}

// sendStored implements transport.
func (s *Subscription) sendStored(m *stored, o msgOpts) sendResult {
	if o.mid != 0 && o.redelivered && s.hasQueued(o.mid) {
		return sent // still waiting for the handler: no second copy
	}
	switch r, _ := s.enqueue(localItem{m: message(m, o.redelivered, o.retained), mid: o.mid}, o.force); r {
	case pushed:
		return sent
	case pushClosed:
		return sendClosed
	}
	return sendFull
}

// sendRetained implements transport.
func (s *Subscription) sendRetained(m *stored) {
	it := localItem{m: message(m, false, true)}
	for {
		r, wait := s.enqueue(it, false)
		if r != pushFull {
			if r == pushRefuse {
				s.enqueue(it, true)
			}
			return
		}
		<-wait
	}
}

// overflow implements transport: drop, and stop stalling publishers until
// the queue has drained to half.
func (s *Subscription) overflow() {
	s.mu.Lock()
	s.dropped++
	s.q.overflowing = true
	s.mu.Unlock()
	s.b.stats.dropped.Add(1)
}

// draining implements transport.
func (s *Subscription) draining(quiet, limit time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && s.q.watch.draining(quiet, limit)
}

// drop implements transport.
func (s *Subscription) drop(n uint64) {
	s.mu.Lock()
	s.dropped += n
	s.mu.Unlock()
}

func (s *Subscription) run() {
	for range s.ready {
		for {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			if s.q.items.n == 0 {
				s.mu.Unlock()
				break
			}
			it := s.q.pop()
			if it.mid != 0 {
				if s.queuedMids[it.mid]--; s.queuedMids[it.mid] <= 0 {
					delete(s.queuedMids, it.mid)
				}
			}
			s.q.release(it.size()) // the handler has it
			s.mu.Unlock()
			if s.call(it.m) && it.mid != 0 {
				s.sess.ack(s, it.mid)
			}
		}
	}
}

// call runs the handler and reports whether it returned nil.
func (s *Subscription) call(m *Message) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
			s.b.stats.panics.Add(1)
			s.b.log.Error("ferry: panic in subscription handler", "filter", s.filter, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if err := s.handler(m); err != nil {
		s.b.log.Warn("ferry: subscription handler failed", "filter", s.filter, "topic", m.Topic, "err", err)
		return false
	}
	return true
}
