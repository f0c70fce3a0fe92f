package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// matchSubs is match returning the direct subscriptions and the number of
// contributing nodes.
func (x *index) matchSubs(topic string, dst []*subscription) ([]*subscription, int) {
	m := matches{subs: dst}
	x.match(topic, &m, nil)
	return m.subs, m.nodes
}

// idxAdd adds a subscription for filter with a sink of its own.
func idxAdd(x *index, filter string) *subscription {
	s := &subscription{filter: filter, sess: &session{}}
	x.add(s)
	return s
}

// idxFilters returns the sorted filters of subs.
func idxFilters(subs []*subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.filter
	}
	slices.Sort(out)
	return out
}

// idxCheck verifies the trie's invariants: every subscription knows its
// node and position, parent links are consistent, no node but the root is
// empty, and the count is the number of subscriptions held.
func idxCheck(t *testing.T, x *index) {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	total := 0
	var walk func(n *node, path string)
	walk = func(n *node, path string) {
		if n != &x.root && n.empty() {
			t.Errorf("node %q is empty but was not pruned", path)
		}
		for i, s := range n.subs {
			if s.node != n || s.pos != i {
				t.Errorf("node %q: subs[%d] (filter %q) has node %p pos %d, want %p pos %d", path, i, s.filter, s.node, s.pos, n, i)
			}
			if s.filter != path {
				t.Errorf("node %q holds a subscription to %q", path, s.filter)
			}
		}
		total += len(n.subs)
		join := func(level string) string {
			if n == &x.root {
				return level
			}
			return path + "/" + level
		}
		for level, c := range n.children {
			if c.parent != n || c.level != level {
				t.Errorf("node %q: child %q has parent %p level %q", path, level, c.parent, c.level)
			}
			if level == "+" || level == "#" {
				t.Errorf("node %q: wildcard %q stored as a literal child", path, level)
			}
			walk(c, join(level))
		}
		if n.plus != nil {
			if n.plus.parent != n || n.plus.level != "+" {
				t.Errorf("node %q: bad '+' child", path)
			}
			walk(n.plus, join("+"))
		}
		if n.hash != nil {
			if n.hash.parent != n || n.hash.level != "#" {
				t.Errorf("node %q: bad '#' child", path)
			}
			if len(n.hash.children) > 0 || n.hash.plus != nil || n.hash.hash != nil {
				t.Errorf("node %q: '#' child has children", path)
			}
			walk(n.hash, join("#"))
		}
	}
	walk(&x.root, "")
	if total != x.count {
		t.Errorf("index holds %d subscriptions, count says %d", total, x.count)
	}
}

// idxRootEmpty fails unless the index holds nothing at all.
func idxRootEmpty(t *testing.T, x *index) {
	t.Helper()
	if n := x.len(); n != 0 {
		t.Errorf("len() = %d after removing everything", n)
	}
	if len(x.root.children) != 0 || x.root.plus != nil || x.root.hash != nil || len(x.root.subs) != 0 {
		t.Errorf("root not empty after removing everything: %d children, plus %v, hash %v, %d subs",
			len(x.root.children), x.root.plus != nil, x.root.hash != nil, len(x.root.subs))
	}
}

func TestIndexMatch(t *testing.T) {
	tests := []struct {
		name    string
		filters []string
		topic   string
		want    []string
		nodes   int
	}{
		{"empty index", nil, "a/b", nil, 0},
		{"exact", []string{"a/b/c", "a/b", "a/b/d", "a/b/c/d", "b/b/c"}, "a/b/c", []string{"a/b/c"}, 1},
		{"exact single level", []string{"a", "ab", "a/b"}, "a", []string{"a"}, 1},
		{"exact is case sensitive", []string{"A/b", "a/B"}, "a/b", nil, 0},
		{"no prefix matching", []string{"a/bc", "ab/c", "a/b/c"}, "a/b", nil, 0},
		{"unicode levels", []string{"zürich/température", "zürich/+"}, "zürich/température", []string{"zürich/+", "zürich/température"}, 2},
		{"plus", []string{"a/+/c", "+/b/c", "+/+/+", "a/+", "+/+", "a/+/d"}, "a/b/c", []string{"+/+/+", "+/b/c", "a/+/c"}, 3},
		{"plus is exactly one level", []string{"a/+", "+/+", "a/+/+"}, "a", nil, 0},
		{"plus alone", []string{"+", "+/+"}, "a", []string{"+"}, 1},
		{"plus and exact on one path", []string{"a/b", "a/+", "+/b", "+/+"}, "a/b", []string{"+/+", "+/b", "a/+", "a/b"}, 4},
		{"hash", []string{"a/#", "a/b/#", "#", "b/#", "a/b/c/d/#"}, "a/b/c", []string{"#", "a/#", "a/b/#"}, 3},
		{"a/# matches a", []string{"a/#", "a/+", "a/b/#"}, "a", []string{"a/#"}, 1},
		{"a/b/# matches a/b", []string{"a/b/#", "a/b", "a/b/+"}, "a/b", []string{"a/b", "a/b/#"}, 2},
		{"hash at root", []string{"#"}, "x/y/z", []string{"#"}, 1},
		{"hash at root, one level", []string{"#"}, "x", []string{"#"}, 1},
		{"plus then hash", []string{"+/#", "+/+/#", "+/b/#"}, "a", []string{"+/#"}, 1},
		{"plus then hash, deep", []string{"+/#", "+/+/#", "+/b/#", "+/c/#"}, "a/b/c", []string{"+/#", "+/+/#", "+/b/#"}, 3},
		{"system topic not matched by root wildcards", []string{"#", "+/info", "+/+", "+", "+/#"}, "$SYS/info", nil, 0},
		{"system topic matched by $SYS filters", []string{"#", "+/info", "+/+", "$SYS/#", "$SYS/+", "$SYS/info", "$other/#", "$SYS/+/+"},
			"$SYS/info", []string{"$SYS/#", "$SYS/+", "$SYS/info"}, 3},
		{"$SYS/# matches $SYS", []string{"#", "+", "+/#", "$SYS/#", "$SYS/+"}, "$SYS", []string{"$SYS/#"}, 1},
		{"$SYS/+ is one level", []string{"$SYS/+", "$SYS/+/+", "$SYS/+/#"}, "$SYS/a/b", []string{"$SYS/+/#", "$SYS/+/+"}, 2},
		{"$ below the root is ordinary", []string{"#", "+/+", "a/+", "+/$b", "a/$b", "a/#"}, "a/$b", []string{"#", "+/$b", "+/+", "a/#", "a/$b", "a/+"}, 6},
		{"several subscriptions on one node", []string{"a/b", "a/b", "a/b", "a/+"}, "a/b", []string{"a/+", "a/b", "a/b", "a/b"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := &index{}
			var subs []*subscription
			for _, f := range tt.filters {
				if err := protocol.ValidateFilter(f, 0); err != nil {
					t.Fatalf("bad test filter %q: %v", f, err)
				}
				subs = append(subs, idxAdd(x, f))
			}
			idxCheck(t, x)
			got, nodes := x.matchSubs(tt.topic, nil)
			if g := idxFilters(got); !slices.Equal(g, tt.want) && !(len(g) == 0 && len(tt.want) == 0) {
				t.Errorf("match(%q) = %q, want %q", tt.topic, g, tt.want)
			}
			if nodes != tt.nodes {
				t.Errorf("match(%q) nodes = %d, want %d", tt.topic, nodes, tt.nodes)
			}
			// agrees with the reference matcher
			for _, s := range subs {
				in := slices.Contains(got, s)
				if want := protocol.Match(s.filter, tt.topic); in != want {
					t.Errorf("filter %q on topic %q: index says %v, protocol.Match says %v", s.filter, tt.topic, in, want)
				}
			}
			// match appends to dst
			prefix := []*subscription{{filter: "sentinel"}}
			got2, _ := x.matchSubs(tt.topic, prefix)
			if len(got2) != 1+len(got) || got2[0].filter != "sentinel" {
				t.Errorf("match did not append to dst: %d results", len(got2))
			}
			for _, s := range subs {
				x.remove(s)
				idxCheck(t, x)
			}
			idxRootEmpty(t, x)
			if got, nodes := x.matchSubs(tt.topic, nil); len(got) != 0 || nodes != 0 {
				t.Errorf("after removing everything match(%q) = %q, %d nodes", tt.topic, idxFilters(got), nodes)
			}
		})
	}
}

func TestIndexRemovePrunes(t *testing.T) {
	filters := []string{"a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "+/b/#", "$SYS/#", "$SYS/broker/load", "x/y/z/w"}
	orders := map[string]func(n int) []int{
		"in order": func(n int) []int {
			p := make([]int, n)
			for i := range p {
				p[i] = i
			}
			return p
		},
		"reverse": func(n int) []int {
			p := make([]int, n)
			for i := range p {
				p[i] = n - 1 - i
			}
			return p
		},
		"shuffled": func(n int) []int { return rand.New(rand.NewPCG(7, 7)).Perm(n) },
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			x := &index{}
			subs := make([]*subscription, len(filters))
			for i, f := range filters {
				subs[i] = idxAdd(x, f)
			}
			if n := x.len(); n != len(filters) {
				t.Fatalf("len() = %d, want %d", n, len(filters))
			}
			for _, i := range order(len(subs)) {
				x.remove(subs[i])
				idxCheck(t, x)
				if subs[i].node != nil {
					t.Errorf("removed subscription %q still points at its node", subs[i].filter)
				}
			}
			idxRootEmpty(t, x)
		})
	}

	t.Run("prunes only what is empty", func(t *testing.T) {
		x := &index{}
		deep := idxAdd(x, "a/b/c/d")
		mid := idxAdd(x, "a/b")
		x.remove(deep)
		idxCheck(t, x)
		b := x.root.children["a"].children["b"]
		if b == nil || len(b.children) != 0 {
			t.Fatalf("after removing a/b/c/d: node a/b = %v, want it kept without children", b)
		}
		if got, _ := x.matchSubs("a/b", nil); len(got) != 1 || got[0] != mid {
			t.Errorf("a/b no longer matches after removing a/b/c/d")
		}
		x.remove(mid)
		idxRootEmpty(t, x)
	})

	t.Run("wildcard children pruned", func(t *testing.T) {
		x := &index{}
		p := idxAdd(x, "a/+")
		h := idxAdd(x, "a/#")
		x.remove(p)
		if a := x.root.children["a"]; a == nil || a.plus != nil || a.hash == nil {
			t.Fatalf("after removing a/+: want node a with '#' child only")
		}
		x.remove(h)
		idxRootEmpty(t, x)
	})

	t.Run("remove twice is a no-op", func(t *testing.T) {
		x := &index{}
		s1 := idxAdd(x, "a/b")
		s2 := idxAdd(x, "a/b")
		x.remove(s1)
		x.remove(s1)
		idxCheck(t, x)
		if got, _ := x.matchSubs("a/b", nil); len(got) != 1 || got[0] != s2 {
			t.Fatalf("second remove of the same subscription disturbed the other one: %v", idxFilters(got))
		}
		x.remove(s2)
		idxRootEmpty(t, x)
	})

	t.Run("re-add after prune", func(t *testing.T) {
		x := &index{}
		s := idxAdd(x, "a/b/c")
		x.remove(s)
		s = idxAdd(x, "a/b/c")
		if got, _ := x.matchSubs("a/b/c", nil); len(got) != 1 || got[0] != s {
			t.Fatalf("re-added subscription does not match")
		}
		x.remove(s)
		idxRootEmpty(t, x)
	})
}

func TestIndexSwapRemove(t *testing.T) {
	for victim := 0; victim < 3; victim++ {
		t.Run(fmt.Sprintf("remove %d of 3", victim), func(t *testing.T) {
			x := &index{}
			subs := []*subscription{idxAdd(x, "a/+/c"), idxAdd(x, "a/+/c"), idxAdd(x, "a/+/c")}
			if subs[0].node != subs[1].node || subs[1].node != subs[2].node {
				t.Fatal("three subscriptions to one filter are on different nodes")
			}
			x.remove(subs[victim])
			idxCheck(t, x)
			got, nodes := x.matchSubs("a/b/c", nil)
			if len(got) != 2 || nodes != 1 {
				t.Fatalf("after removing one of three: %d matches from %d nodes, want 2 from 1", len(got), nodes)
			}
			for i, s := range subs {
				if in := slices.Contains(got, s); in != (i != victim) {
					t.Errorf("subscription %d matched: %v, want %v", i, in, i != victim)
				}
			}
			// the moved subscription can still be removed by its new position
			for i, s := range subs {
				if i == victim {
					continue
				}
				x.remove(s)
				idxCheck(t, x)
				got, _ := x.matchSubs("a/b/c", nil)
				if slices.Contains(got, s) {
					t.Errorf("subscription %d still matches after its removal", i)
				}
			}
			idxRootEmpty(t, x)
		})
	}
}

// idxRandTopic returns a random valid topic over a small alphabet, so that
// filters and topics collide often.
func idxRandTopic(r *rand.Rand) string {
	levels := []string{"a", "b", "c", "dd"}
	n := 1 + r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	switch r.IntN(10) {
	case 0:
		parts[0] = "$SYS"
	case 1:
		parts[0] = "$x"
	}
	return strings.Join(parts, "/")
}

// idxRandFilter returns a random valid filter over the same alphabet.
func idxRandFilter(r *rand.Rand) string {
	levels := []string{"a", "b", "c", "dd", "+", "+"}
	n := 1 + r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = levels[r.IntN(len(levels))]
	}
	switch r.IntN(10) {
	case 0:
		parts[0] = "$SYS"
	case 1:
		parts[0] = "$x"
	}
	switch r.IntN(5) {
	case 0:
		parts[n-1] = "#"
	case 1:
		parts = append(parts, "#")
	}
	return strings.Join(parts, "/")
}

// TestIndexMatchesProtocol checks the trie against protocol.Match, the
// reference matcher, on random filters and topics, before and after
// removing subscriptions.
func TestIndexMatchesProtocol(t *testing.T) {
	r := rand.New(rand.NewPCG(20240601, 42))
	x := &index{}
	var subs []*subscription
	for range 400 {
		f := idxRandFilter(r)
		if err := protocol.ValidateFilter(f, 0); err != nil {
			t.Fatalf("generated an invalid filter %q: %v", f, err)
		}
		subs = append(subs, idxAdd(x, f))
	}
	// a few fixed ones so that the edge cases are always present
	for _, f := range []string{"#", "+", "+/#", "$SYS/#", "$SYS/+", "a/#", "a"} {
		subs = append(subs, idxAdd(x, f))
	}
	topics := make([]string, 0, 600)
	for range 500 {
		topics = append(topics, idxRandTopic(r))
	}
	topics = append(topics, "$SYS", "$x", "a", "a/b", "$SYS/a", "dd/dd/dd/dd/dd/dd")

	matches := 0
	compare := func(stage string, live []*subscription) {
		t.Helper()
		idxCheck(t, x)
		if x.len() != len(live) {
			t.Fatalf("%s: len() = %d, want %d", stage, x.len(), len(live))
		}
		for _, topic := range topics {
			if err := protocol.ValidateTopic(topic, 0); err != nil {
				t.Fatalf("generated an invalid topic %q: %v", topic, err)
			}
			got, nodes := x.matchSubs(topic, nil)
			var want []*subscription
			for _, s := range live {
				if protocol.Match(s.filter, topic) {
					want = append(want, s)
				}
			}
			matches += len(want)
			gotSet := make(map[*subscription]int, len(got))
			distinct := make(map[*node]struct{})
			for _, s := range got {
				gotSet[s]++
				distinct[s.node] = struct{}{}
			}
			for s, n := range gotSet {
				if n > 1 {
					t.Errorf("%s: topic %q: filter %q returned %d times", stage, topic, s.filter, n)
				}
			}
			if len(got) != len(want) {
				t.Errorf("%s: topic %q: index matched %d subscriptions, protocol.Match %d", stage, topic, len(got), len(want))
			}
			for _, s := range want {
				if gotSet[s] == 0 {
					t.Errorf("%s: topic %q: filter %q missed by the index", stage, topic, s.filter)
				}
			}
			for s := range gotSet {
				if !slices.Contains(want, s) {
					t.Errorf("%s: topic %q: filter %q matched by the index only", stage, topic, s.filter)
				}
			}
			if nodes != len(distinct) {
				t.Errorf("%s: topic %q: nodes = %d, but matches come from %d nodes", stage, topic, nodes, len(distinct))
			}
			if t.Failed() {
				t.FailNow()
			}
		}
	}

	compare("all", subs)
	// remove a random half, in random order
	r.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
	half := len(subs) / 2
	for _, s := range subs[:half] {
		x.remove(s)
	}
	compare("half removed", subs[half:])
	for _, s := range subs[half:] {
		x.remove(s)
	}
	compare("all removed", nil)
	idxRootEmpty(t, x)
	if matches < 1000 {
		t.Errorf("only %d matches in all: the random filters and topics do not overlap enough to test much", matches)
	}
}

// TestIndexConcurrent runs adds, removes and matches at once, for the race
// detector.
func TestIndexConcurrent(t *testing.T) {
	x := &index{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			var mine []*subscription
			var dst []*subscription
			for range 500 {
				switch r.IntN(3) {
				case 0:
					mine = append(mine, idxAdd(x, idxRandFilter(r)))
				case 1:
					if len(mine) > 0 {
						i := r.IntN(len(mine))
						x.remove(mine[i])
						mine = slices.Delete(mine, i, i+1)
					}
				case 2:
					dst, _ = x.matchSubs(idxRandTopic(r), dst[:0])
				}
			}
			for _, s := range mine {
				x.remove(s)
			}
		}()
	}
	wg.Wait()
	idxCheck(t, x)
	idxRootEmpty(t, x)
}

// BenchmarkIndexMatch100k matches topics against 100,000 subscriptions with
// an IoT-like mix of filters: 90% exact device topics, 9% one '+' (a metric
// across a site's devices), 1% '#' (everything of a site or a device).
func BenchmarkIndexMatch100k(b *testing.B) {
	const (
		total   = 100_000
		sites   = 100
		devices = 250 // per site
	)
	metrics := []string{"temp", "hum", "batt", "rssi"}
	r := rand.New(rand.NewPCG(1, 2))
	x := &index{}
	var topics []string
	for i := range total {
		site := r.IntN(sites)
		var f string
		switch pct := i % 100; {
		case pct < 90:
			f = fmt.Sprintf("site-%d/dev-%d/%s", site, r.IntN(devices), metrics[r.IntN(len(metrics))])
			topics = append(topics, f)
		case pct < 99:
			f = fmt.Sprintf("site-%d/+/%s", site, metrics[r.IntN(len(metrics))])
		default:
			if r.IntN(2) == 0 {
				f = fmt.Sprintf("site-%d/#", site)
			} else {
				f = fmt.Sprintf("site-%d/dev-%d/#", site, r.IntN(devices))
			}
		}
		idxAdd(x, f)
	}
	if x.len() != total {
		b.Fatalf("index holds %d subscriptions", x.len())
	}
	r.Shuffle(len(topics), func(i, j int) { topics[i], topics[j] = topics[j], topics[i] })
	dst := make([]*subscription, 0, 1024)
	matched := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var nodes int
		dst, nodes = x.matchSubs(topics[i%len(topics)], dst[:0])
		if nodes == 0 {
			b.Fatal("an existing topic matched nothing")
		}
		matched += len(dst)
	}
	b.ReportMetric(float64(matched)/float64(b.N), "subs/match")
}

// encSink stands in for a connection: it asks the delivery for its frame in
// the connection's codec, as conn.push does, and counts under a mutex (as
// the outbound queue does) instead of queueing.
type encSink struct {
	codec   protocol.Codec
	encodes *atomic.Int64
	mu      sync.Mutex
	n       int
}

func (s *encSink) sendStored(*stored, msgOpts) sendResult { return sent }
func (s *encSink) sendRetained(*stored)                   {}
func (s *encSink) drop(uint64)                            {}

func (s *encSink) send(d *delivery, _ *group) (pushResult, <-chan struct{}) {
	if d.frames[s.codec] == nil {
		s.encodes.Add(1)
	}
	if d.frame(s.codec) == nil {
		return pushClosed, nil
	}
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return pushed, nil
}

func (s *encSink) overflow()                                  {}
func (s *encSink) draining(time.Duration, time.Duration) bool { return false }

// BenchmarkEncodeOnce publishes through Broker.Publish to 1 or 1,000
// subscribers on one topic (without sockets), so that the fixed cost of a
// publish (validation, index look-up, encoding the frame) and the cost per
// subscriber can be told apart: per-subscriber cost ≈ (t1000 - t1) / 999.
// "encodes/op" shows that the frame is encoded once per codec, not once per
// subscriber.
func BenchmarkEncodeOnce(b *testing.B) {
	data := []byte(`{"device":"dev-0042","ts":1700000000,"temp":21.5,"hum":40.25,"pad":"` +
		strings.Repeat("x", 58) + `"}`)
	if len(data) != 128 || !protocol.ValidJSON(data) {
		b.Fatalf("message is %d bytes (valid JSON: %v), want 128", len(data), protocol.ValidJSON(data))
	}
	for _, bc := range []struct {
		name  string
		subs  int
		mixed bool
	}{
		{"subs=1", 1, false},
		{"subs=1000", 1000, false},
		{"subs=1000-mixed", 1000, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br, err := New(Options{PingInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := br.Shutdown(ctx); err != nil {
					b.Error(err)
				}
			}()
			var encodes atomic.Int64
			sinks := make([]*encSink, bc.subs)
			for i := range sinks {
				c := protocol.JSON
				if bc.mixed && i%2 == 1 {
					c = protocol.Msgpack
				}
				sinks[i] = &encSink{codec: c, encodes: &encodes}
				sub := &subscription{filter: "bench/encode", sess: newSession(br, ""), t: sinks[i]}
				sub.primed.Store(true)
				br.index.add(sub)
			}
			m := Message{Topic: "bench/encode", Data: data}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := br.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			for i, s := range sinks {
				if s.n != b.N {
					b.Fatalf("sink %d got %d messages, want %d", i, s.n, b.N)
				}
			}
			b.ReportMetric(float64(encodes.Load())/float64(b.N), "encodes/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.subs), "ns/delivery")
		})
	}
}

// BenchmarkOutQueue: one frame through a connection's outbound queue
// (push, the writer's take, written), the queue's own cost without a
// socket.
func BenchmarkOutQueue(b *testing.B) {
	q := testQueue(1 << 20)
	frame := make([]byte, 140)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; i < b.N; i++ {
		if r, _ := q.push(frame); r != pushed {
			b.Fatal("push refused")
		}
		if i%64 == 63 { // the writer drains in batches
			batch, n, _, _ := q.take()
			q.written(batch, n)
			q.mu.Lock()
			q.running = false // as the writer does when it stops
			q.writers.Done()
			q.mu.Unlock()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}
