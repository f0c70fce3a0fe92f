package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

var matchPool = sync.Pool{New: func() any { return new(matches) }}

// stallClock is one publish's stall budget (Options.MaxStall or
// AckStall), shared by every full queue it waits on.
type stallClock struct {
	b       *Broker
	budget  time.Duration
	drain   time.Duration // Options.DrainTimeout; 0: the budget is a total
	timer   *time.Timer
	expired bool
	timeout bool // expired because the budget ran out (not ctx, not shutdown)
	down    bool // the broker began shutting down during the stall
}

// drainQuiet is how long a queue that has room must not be found full for
// a full spell to end (drainWatch.full).
const drainQuiet = 200 * time.Millisecond

// newClocks returns the stall clocks of one publish: for plain
// subscriptions and for acknowledged ones. With backpressure, a plain
// subscription's queue that drains holds the publish longer (see
// drainWatch); without (deliveries from the cluster, whose publishers are
// elsewhere), MaxStall is the whole stall.
func (b *Broker) newClocks(backpressure bool) (plain, ack stallClock) {
	plain = stallClock{b: b, budget: b.opts.MaxStall}
	if backpressure {
		plain.drain = max(b.opts.DrainTimeout, 0)
	}
	ack = stallClock{b: b, budget: b.opts.AckStall}
	return plain, ack
}

// wait waits for ch, which s's full queue closes when room may have been
// made, within the budget; false once the budget is spent or ctx ends.
// When the budget runs out while s's queue is draining (see drainWatch),
// a new budget begins, also when it ran out earlier in this publish on
// another queue.
func (c *stallClock) wait(ctx context.Context, ch <-chan struct{}, s *subscription) bool {
	if c.expired {
		if !c.timeout || !c.drainingQueue(s) {
			return false
		}
		c.expired, c.timeout = false, false
		c.timer.Reset(c.budget)
	}
	if c.timer == nil {
		if c.budget <= 0 {
			c.expired = true
			return false
		}
		c.timer = time.NewTimer(c.budget)
	}
	c.b.stats.stalls.Add(1)
	for {
		select {
		case <-ch:
			return true
		case <-c.timer.C:
			if c.drainingQueue(s) {
				c.timer.Reset(c.budget)
				continue
			}
			c.timeout = true
		case <-ctx.Done():
		case <-c.b.done:
			c.down = true
		}
		c.expired = true
		return false
	}
}

// drainingQueue reports whether s's queue is draining, for this clock:
// its subscriber made progress within DrainTimeout. However long it has
// been full, a subscriber that keeps reading holds its publishers
// (backpressure), and is never a slow consumer.
func (c *stallClock) drainingQueue(s *subscription) bool {
	return c.drain > 0 && s.draining(c.drain, 0)
}

// drainWatch tells a full queue that drains from one that is stuck. Its
// owner guards it with its own mutex.
type drainWatch struct {
	fullSince int64 // unix ns the current full spell began; 0: none
	lastFull  int64 // unix ns a push last found the queue full
	lastDrain int64 // unix ns something was last given to the subscriber
}

// full records that a push found the queue full. A spell goes on while
// pushes keep finding it full; one that finds it full after it had room
// for drainQuiet begins a new spell.
func (w *drainWatch) full() {
	now := time.Now().UnixNano()
	if w.fullSince == 0 || now-w.lastFull > int64(drainQuiet) {
		w.fullSince = now
	}
	w.lastFull = now
}

// drained records that the queue gave something to its subscriber; half
// tells that it is at most half full now, which ends its full spell.
func (w *drainWatch) drained(half bool) {
	w.lastDrain = time.Now().UnixNano()
	if half {
		w.fullSince = 0
	}
}

// draining reports whether the queue, full, drained something within the
// last quiet and has been full for less than limit (0: no limit).
func (w *drainWatch) draining(quiet, limit time.Duration) bool {
	if w.fullSince == 0 {
		return true // no longer full: the waiter retries
	}
	now := time.Now().UnixNano()
	return now-w.lastDrain < int64(quiet) && (limit <= 0 || now-w.fullSince < int64(limit))
}

// errShuttingDown ends a publish that the broker's shutdown interrupted: it
// gets no reply, so the client sends it again to the next broker.
var errShuttingDown = &protocol.Error{Code: protocol.CodeInternal, Reason: "broker shutting down"}

func (c *stallClock) stop() {
	if c.timer != nil {
		c.timer.Stop()
	}
}

type stalled struct {
	sub  *subscription
	wait <-chan struct{}
}

// route delivers d to every matching subscription, once per session even
// when several of its filters match (an acknowledged subscription wins
// over a plain one), and to one member of each matching queue group. With
// retain, d becomes its topic's retained message first; a full retained
// store refuses the publish. Full queues get a brief stall (MaxStall in
// total for this publish, or until ctx ends) after every subscriber with
// room was served; then the slow-consumer policy applies.
func (b *Broker) route(ctx context.Context, d *delivery, retain, confirm bool) *protocol.Error {
	if b.cluster == nil {
		return b.routeLocal(ctx, d, retain, true)
	}
	if retain {
		// stored here first, for the limit; every node stores it when the
		// cluster brings it
		if err := b.retained.set(b, d.stored()); err != nil {
			return err
		}
	}
	m := ClusterMessage{Topic: d.topic, Data: d.data, Codec: d.codec, Retain: retain}
	if err := b.cluster.Publish(ctx, m, confirm); errors.Is(err, ErrNotConfirmed) {
		return protocol.Wrap(protocol.CodeInternal, "pub: ", err)
	} else if err != nil {
		// the cluster is unreachable: this node's subscribers still get it
		b.log.Debug("ferry: cluster publish failed, delivering locally", "err", err)
		return b.routeLocal(ctx, d, false, true)
	}
	return nil
}

// routeLocal delivers d to this node's subscriptions. published tells that
// d was published on this node (not brought by the cluster): then it also
// goes to this node's queue groups, and draining queues hold the publisher
// (backpressure).
func (b *Broker) routeLocal(ctx context.Context, d *delivery, retain, published bool) *protocol.Error {
	m := matchPool.Get().(*matches)
	defer func() { m.reset(); matchPool.Put(m) }()
	var rerr *protocol.Error
	var before func()
	if retain {
		before = func() { rerr = b.retained.set(b, d.stored()) }
	}
	b.index.match(d.topic, m, before)
	if rerr != nil {
		return rerr
	}
	subs := m.subs
	if m.nodes > 1 {
		subs = dedupe(subs)
	}
	// acknowledged subscriptions get the longer AckStall: a slow but
	// acknowledging consumer slows its publishers down instead of losing
	// messages
	clock, ackClock := b.newClocks(published)
	defer clock.stop()
	defer ackClock.stop()
	var stallBuf [8]stalled
	waits := stallBuf[:0]
	delivered := 0
	for _, s := range subs {
		switch r, wait := s.push(d); r {
		case pushed:
			delivered++
		case pushFull:
			waits = append(waits, stalled{s, wait})
		case pushRefuse:
			s.overflow()
		}
	}
	if published {
		for _, g := range m.groups {
			if b.deliverGroup(ctx, g, d, &clock, &ackClock) {
				delivered++
			}
		}
	}
	for _, w := range waits {
		c := &clock
		if w.sub.ack != nil {
			c = &ackClock
		}
		for {
			if !c.wait(ctx, w.wait, w.sub) {
				// one last try: the queue may have drained meanwhile
				if r, _ := w.sub.push(d); r == pushed {
					delivered++
				} else if r != pushClosed && !c.down {
					w.sub.overflow()
				}
				break
			}
			r, wait := w.sub.push(d)
			if r == pushFull {
				w.wait = wait
				continue
			}
			if r == pushed {
				delivered++
			} else if r == pushRefuse {
				w.sub.overflow()
			}
			break
		}
	}
	b.stats.published.Add(1)
	b.stats.delivered.Add(uint64(delivered))
	if clock.down || ackClock.down {
		return errShuttingDown
	}
	return nil
}

var seenPool = sync.Pool{New: func() any { return make(map[*session]int) }}

// dedupe keeps one subscription per session, preferring an acknowledged
// one.
func dedupe(subs []*subscription) []*subscription {
	seen := seenPool.Get().(map[*session]int)
	defer func() { clear(seen); seenPool.Put(seen) }()
	out := subs[:0]
	for _, s := range subs {
		if i, ok := seen[s.sess]; ok {
			// an acknowledged subscription wins; among plain ones, one that
			// is still priming, so that its retained messages come first
			if o := out[i]; o.ack == nil && (s.ack != nil || (o.primed.Load() && !s.primed.Load())) {
				out[i] = s
			}
			continue
		}
		seen[s.sess] = len(out)
		out = append(out, s)
	}
	clear(subs[len(out):])
	return out
}

// Publish publishes m from the embedding application. Its topic must be a
// valid topic without wildcards ('$' topics are allowed: the application is
// the broker) and Data one value of m.Codec. It returns once the message is
// in the queue of every matching subscriber (or the slow-consumer policy was
// applied); ctx bounds the brief stall on full queues.
func (b *Broker) Publish(ctx context.Context, m Message) error {
	if b.isClosed() {
		return ErrClosed
	}
	if err := protocol.ValidateTopic(m.Topic, b.opts.MaxTopicBytes); err != nil {
		return fmt.Errorf("%w (%w)", ErrBadTopic, err)
	}
	if len(m.Data) > b.opts.MaxFrameBytes {
		return fmt.Errorf("%w: data is %d bytes, over the frame limit of %d", ErrTooLarge, len(m.Data), b.opts.MaxFrameBytes)
	}
	if err := m.validate(); err != nil {
		return err
	}
	d := newDelivery(b, m.Topic, m.Codec, m.Data)
	defer d.release()
	if err := b.route(ctx, d, m.Retain, true); err != nil {
		if err.Code == protocol.CodeLimit {
			return fmt.Errorf("%w (%w)", ErrLimit, err)
		}
		return fmt.Errorf("ferry: %w", err)
	}
	return nil
}
