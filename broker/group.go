package broker

import (
	"context"
	"sync"
)

// group is a queue group: the members subscribed with one filter and one
// group name. Each message goes to one member, round-robin among those
// with room.
type group struct {
	name   string
	filter string
	node   *node // index.mu

	mu      sync.Mutex
	members []*subscription
	next    int
}

var memberPool = sync.Pool{New: func() any { s := make([]*subscription, 0, 16); return &s }}

// pick offers d to the members in turn, starting after the last one used,
// until one takes it. If all are full it returns the wait channel of the
// first full one and that member, for the caller's stall.
func (g *group) pick(try func(*subscription) (pushResult, <-chan struct{})) (ok bool, wait <-chan struct{}, full *subscription) {
	bp := memberPool.Get().(*[]*subscription)
	defer func() { clear(*bp); *bp = (*bp)[:0]; memberPool.Put(bp) }()
	g.mu.Lock()
	members := append((*bp)[:0], g.members...)
	start := g.next
	g.mu.Unlock()
	*bp = members
	n := len(members)
	for i := 0; i < n; i++ {
		k := (start + i) % n
		m := members[k]
		r, w := try(m)
		switch r {
		case pushed:
			g.mu.Lock()
			g.next = k + 1
			g.mu.Unlock()
			return true, nil, nil
		case pushFull:
			if wait == nil {
				wait, full = w, m
			}
		case pushRefuse:
			if full == nil {
				full = m
			}
		}
	}
	return false, wait, full
}

// deliverGroup routes d to one member of g: one that can take it at once
// if any, else one with room in its queue; if every member is full it
// stalls within the publish's budget, then applies the policy to one.
func (b *Broker) deliverGroup(ctx context.Context, g *group, d *delivery, clock, ackClock *stallClock) bool {
	now := func(s *subscription) (pushResult, <-chan struct{}) { return s.pushNow(d) }
	push := func(s *subscription) (pushResult, <-chan struct{}) { return s.push(d) }
	for {
		if ok, _, _ := g.pick(now); ok {
			return true
		}
		ok, wait, full := g.pick(push)
		if ok {
			return true
		}
		if full == nil {
			return false // no members left
		}
		c := clock
		if full.ack != nil {
			c = ackClock
		}
		if wait == nil || !c.wait(ctx, wait, full) {
			if c.down {
				return false
			}
			// a member may have made room meanwhile
			if ok, _, _ := g.pick(push); ok {
				return true
			}
			full.overflow()
			return false
		}
	}
}

// handOver gives a leaving group member's unfinished messages to the rest
// of its group, as redeliveries. What no member can take is dropped and
// counted.
func (b *Broker) handOver(s *subscription, msgs []*stored) {
	if len(msgs) == 0 || s.group == nil {
		return
	}
	for _, m := range msgs {
		ok, _, _ := s.group.pick(func(o *subscription) (pushResult, <-chan struct{}) { return o.pushStored(m) })
		if ok {
			b.stats.redelivered.Add(1)
		} else {
			b.stats.dropped.Add(1)
		}
	}
}
