package broker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// sink is what a subscription delivers to: a connection or an in-process
// subscription.
type sink interface {
	// push queues d without blocking. pushFull comes with a channel that
	// is closed when room may have been made; pushRefuse means full with no
	// stall wanted (the sink is overflowing already).
	push(d *delivery) (pushResult, <-chan struct{})
	// overflow applies the slow-consumer policy.
	overflow()
}

// subscription is one entry of the index.
type subscription struct {
	filter string
	sink   sink
	node   *node // position in the index, guarded by index.mu
	pos    int
}

var matchPool = sync.Pool{New: func() any { s := make([]*subscription, 0, 64); return &s }}

type stalled struct {
	sink sink
	wait <-chan struct{}
}

// route delivers d to every matching subscription: once per sink, even
// when several of its filters match. Full queues get a brief, bounded
// stall (MaxStall in total for this publish, or until ctx ends) before
// the slow-consumer policy applies, so that bursts are absorbed without
// holding up the other subscribers, which are served first.
func (b *Broker) route(ctx context.Context, d *delivery) {
	bp := matchPool.Get().(*[]*subscription)
	subs, nodes := b.index.match(d.topic, (*bp)[:0])
	if nodes > 1 {
		subs = dedupe(subs)
	}
	var stallBuf [8]stalled
	waits := stallBuf[:0]
	delivered := 0
	for _, s := range subs {
		switch r, wait := s.sink.push(d); r {
		case pushed:
			delivered++
		case pushFull:
			waits = append(waits, stalled{s.sink, wait})
		case pushRefuse:
			s.sink.overflow()
		}
	}
	clear(subs)
	*bp = subs[:0]
	matchPool.Put(bp)
	if len(waits) > 0 {
		delivered += b.stall(ctx, d, waits)
	}
	b.stats.published.Add(1)
	b.stats.delivered.Add(uint64(delivered))
}

// stall retries full sinks until they take d or the stall budget ends.
func (b *Broker) stall(ctx context.Context, d *delivery, waits []stalled) (delivered int) {
	var timer <-chan time.Time
	if b.opts.MaxStall > 0 {
		t := time.NewTimer(b.opts.MaxStall)
		defer t.Stop()
		timer = t.C
	}
	expired := timer == nil
	b.stats.stalls.Add(uint64(len(waits)))
	for _, w := range waits {
		for !expired {
			select {
			case <-w.wait:
			case <-timer:
				expired = true
			case <-ctx.Done():
				expired = true
			}
			if expired {
				break
			}
			r, wait := w.sink.push(d)
			if r == pushed {
				delivered++
				break
			}
			if r != pushFull {
				if r == pushRefuse {
					w.sink.overflow()
				}
				break
			}
			w.wait = wait
		}
		if expired {
			// one last try: the queue may have drained meanwhile
			switch r, _ := w.sink.push(d); r {
			case pushed:
				delivered++
			case pushFull, pushRefuse:
				w.sink.overflow()
			}
		}
	}
	return delivered
}

var seenPool = sync.Pool{New: func() any { return make(map[sink]struct{}) }}

func dedupe(subs []*subscription) []*subscription {
	seen := seenPool.Get().(map[sink]struct{})
	defer func() { clear(seen); seenPool.Put(seen) }()
	out := subs[:0]
	for _, s := range subs {
		if _, ok := seen[s.sink]; ok {
			continue
		}
		seen[s.sink] = struct{}{}
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
		return fmt.Errorf("%w: %s", ErrBadTopic, err.Reason)
	}
	if len(m.Data) > b.opts.MaxFrameBytes {
		return fmt.Errorf("%w: data is %d bytes, over the frame limit of %d", ErrTooLarge, len(m.Data), b.opts.MaxFrameBytes)
	}
	if err := m.validate(); err != nil {
		return err
	}
	b.route(ctx, &delivery{b: b, topic: m.Topic, codec: m.Codec, data: m.Data})
	return nil
}
