package natscluster

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/nats-io/nats.go"
)

func TestDedupeSkipsCopies(t *testing.T) {
	d := newDedupe(dedupeMax, dedupeTTL)
	now := time.Now()
	for _, tc := range []struct {
		key   string
		seq   uint64
		fresh bool
	}{
		{"a", 1, true}, {"a", 1, false}, {"b", 1, true}, {"a", 2, true}, {"b", 1, false}, {"a", 2, false}, {"a", 1, false}, {"a", 5, true},
	} {
		if got := d.fresh(tc.key, tc.seq, now); got != tc.fresh {
			t.Fatalf("fresh(%s, %d) = %v, want %v", tc.key, tc.seq, got, tc.fresh)
		}
	}
}

// TestDedupeBounded: a hundred thousand origins (nodes restarting, each
// with a new origin) leave at most two generations of keys, while a node
// that stays up keeps having its copies skipped.
func TestDedupeBounded(t *testing.T) {
	d := newDedupe(dedupeMax, dedupeTTL)
	now := time.Now()
	var live uint64
	for i := range 100_000 {
		o := "restarted-" + strconv.Itoa(i)
		for seq := uint64(1); seq <= 3; seq++ {
			if !d.fresh(o, seq, now) || d.fresh(o, seq, now) {
				t.Fatalf("origin %d seq %d: not delivered once", i, seq)
			}
		}
		if i%10 == 0 {
			live++
			if !d.fresh("live", live, now) || d.fresh("live", live, now) {
				t.Fatalf("live origin seq %d: not delivered once", live)
			}
		}
		if n := d.len(); n > 2*dedupeMax {
			t.Fatalf("%d keys held after %d origins, want at most %d", n, i+1, 2*dedupeMax)
		}
	}
	t.Logf("keys held after 100000 origins: %d", d.len())
}

// TestDedupeForgetsSilentOrigins: an origin not heard from for two
// generations' time is forgotten, one heard from is kept.
func TestDedupeForgetsSilentOrigins(t *testing.T) {
	d := newDedupe(dedupeMax, time.Minute)
	t0 := time.Now()
	d.fresh("gone", 7, t0)
	d.fresh("stays", 1, t0)
	d.fresh("stays", 2, t0.Add(61*time.Second)) // a new generation
	if d.fresh("gone", 7, t0.Add(62*time.Second)) {
		t.Fatal("a copy within the second generation was not skipped")
	}
	d.fresh("stays", 3, t0.Add(3*time.Minute))
	d.fresh("stays", 4, t0.Add(5*time.Minute))
	if n := d.len(); n != 1 {
		t.Fatalf("%d keys held, want 1 (stays)", n)
	}
	if d.fresh("stays", 4, t0.Add(5*time.Minute)) {
		t.Fatal("the origin heard from lost its sequence")
	}
}

// countingNode counts what dispatch hands to the broker.
type countingNode struct{ delivered atomic.Int64 }

func (n *countingNode) Deliver(broker.ClusterMessage)                      { n.delivered.Add(1) }
func (n *countingNode) DeliverGroup(string, string, broker.ClusterMessage) {}
func (n *countingNode) SetRetained(broker.ClusterMessage)                  {}
func (n *countingNode) Retained() []broker.ClusterMessage                  { return nil }

// TestDispatchBoundsOrigins feeds dispatch messages from many origins, each
// twice (as overlapping subscriptions bring them): each is delivered once,
// and the dedupe state stays bounded.
func TestDispatchBoundsOrigins(t *testing.T) {
	c, err := New(Options{URLs: []string{"nats://127.0.0.1:4222"}}) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	node := &countingNode{}
	c.node = node
	c.wg.Add(1)
	go c.dispatch()
	const origins = 20_000
	for i := range origins {
		m := &nats.Msg{Subject: "ferry.t", Data: []byte("1"), Header: nats.Header{}}
		m.Header.Set(hOrigin, "node-"+strconv.Itoa(i))
		m.Header.Set(hSeq, "1")
		c.ch <- m
		c.ch <- m
	}
	testutil.Eventually(t, 10*time.Second, time.Millisecond, "deliveries", func() bool { return node.delivered.Load() >= origins })
	close(c.done)
	c.wg.Wait()
	if got := node.delivered.Load(); got != origins {
		t.Fatalf("delivered %d, want %d", got, origins)
	}
	if n := c.last.len(); n > 2*dedupeMax {
		t.Fatalf("%d origins held, want at most %d", n, 2*dedupeMax)
	}
}
