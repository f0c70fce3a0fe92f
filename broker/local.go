package broker

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/ferry-io/ferry/protocol"
)

// Handler handles a message of an in-process subscription. Its return value
// is logged when not nil. The Message is shared with other subscriptions
// and must not be modified.
type Handler func(m *Message) error

// Subscription is an in-process subscription. Its handler runs on a
// goroutine of its own, one message at a time in publish order, never on
// the publisher's goroutine. Messages wait in a queue bounded by
// Options.QueueBytes; when it is full (after the brief publish stall)
// messages are dropped and counted in Stats().Dropped.
type Subscription struct {
	b       *Broker
	filter  string
	handler Handler
	sub     *subscription

	mu          sync.Mutex
	queue       []*Message
	bytes       int
	closed      bool
	ready       chan struct{} // signalled when the queue gets a message
	space       chan struct{} // closed when room is made
	dropped     uint64
	overflowing bool
	once        sync.Once
}

// Subscribe registers handler for messages on topics matching filter.
func (b *Broker) Subscribe(filter string, handler Handler) (*Subscription, error) {
	if handler == nil {
		return nil, fmt.Errorf("ferry: Subscribe: nil handler")
	}
	if err := protocol.ValidateFilter(filter, b.opts.MaxTopicBytes); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrBadTopic, err.Reason)
	}
	s := &Subscription{b: b, filter: filter, handler: handler, ready: make(chan struct{}, 1)}
	s.sub = &subscription{filter: filter, sink: s}
	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	b.locals[s] = struct{}{}
	b.bgWG.Add(1)
	b.index.add(s.sub) // under b.mu, so that Shutdown sees it indexed
	b.mu.Unlock()
	b.stats.subscriptions.Add(1)
	go s.run()
	return s, nil
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

// Unsubscribe stops the subscription and discards its queued messages. A
// handler call that is running, or about to start with a message already
// taken from the queue, may still run after it returns; no other will. It
// is safe to call more than once, also from the handler.
func (s *Subscription) Unsubscribe() {
	s.once.Do(func() {
		s.b.index.remove(s.sub)
		s.b.stats.subscriptions.Add(-1)
		s.mu.Lock()
		s.closed = true
		s.queue = nil
		s.bytes = 0
		if s.space != nil {
			close(s.space)
			s.space = nil
		}
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

// queuedSize is what one queued message counts against the bound: its
// data and topic, and roughly what holds them.
func queuedSize(m *Message) int { return len(m.Data) + len(m.Topic) + 64 }

func (s *Subscription) push(d *delivery) (pushResult, <-chan struct{}) {
	m := d.message()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return pushClosed, nil
	}
	if n := queuedSize(m); s.bytes > 0 && s.bytes+n > s.b.opts.QueueBytes {
		if s.overflowing {
			return pushRefuse, nil
		}
		if s.space == nil {
			s.space = make(chan struct{})
		}
		return pushFull, s.space
	}
	s.queue = append(s.queue, m)
	s.bytes += queuedSize(m)
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return pushed, nil
}

// overflow drops a message for a full queue; publishers stop stalling on
// this subscription until its queue drains to half.
func (s *Subscription) overflow() {
	s.mu.Lock()
	s.dropped++
	s.overflowing = true
	s.mu.Unlock()
	s.b.stats.dropped.Add(1)
}

func (s *Subscription) run() {
	defer s.b.bgWG.Done()
	for range s.ready {
		for {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			if len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			m := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			s.bytes -= queuedSize(m)
			if s.overflowing && s.bytes <= s.b.opts.QueueBytes/2 {
				s.overflowing = false
			}
			if s.space != nil {
				close(s.space)
				s.space = nil
			}
			s.mu.Unlock()
			s.call(m)
		}
	}
}

func (s *Subscription) call(m *Message) {
	defer func() {
		if r := recover(); r != nil {
			s.b.stats.panics.Add(1)
			s.b.log.Error("ferry: panic in subscription handler", "filter", s.filter, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if err := s.handler(m); err != nil {
		s.b.log.Warn("ferry: subscription handler failed", "filter", s.filter, "topic", m.Topic, "err", err)
	}
}
