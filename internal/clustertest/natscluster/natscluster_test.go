package natscluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/ferry-io/ferry/natscluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server keeps a few process-wide goroutines
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreTopFunction("time.Sleep"))
}

const wait = 20 * time.Second

func natsURL(s *server.Server) string { return s.ClientURL() }

// node is a ferry broker in a cluster, served on 127.0.0.1.
type node struct {
	b   *broker.Broker
	c   *natscluster.Cluster
	url string
	srv *http.Server
}

func startNode(t testing.TB, urls ...string) *node {
	t.Helper()
	return startNodeWith(t, broker.Options{}, urls...)
}

// startNodeWith is startNode with broker options (Cluster and Logger are
// set here).
func startNodeWith(t testing.TB, bo broker.Options, urls ...string) *node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := natscluster.New(natscluster.Options{URLs: urls, Logger: log, SnapshotTimeout: 500 * time.Millisecond,
		// each node stays on its first server while it is up
		NATSOptions: []nats.Option{nats.DontRandomize(), nats.ReconnectWait(20 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	bo.Cluster, bo.Logger = cl, log
	b, err := broker.New(bo)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	addr, srv := testutil.Serve(t, mux)
	n := &node{b: b, c: cl, url: "ws://" + addr + "/ws", srv: srv}
	t.Cleanup(n.stop)
	return n
}

func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
	_ = n.b.Shutdown(ctx)
}

func connect(t testing.TB, url string) *client.Client {
	t.Helper()
	c, err := client.Connect(context.Background(), url, client.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recorder collects the integer messages of a subscription; "probe"
// messages mark that the subscription is reachable.
type recorder struct {
	mu     sync.Mutex
	got    []int
	probed bool
}

func (r *recorder) handler(m *client.Message) error {
	var v any
	if err := m.Decode(&v); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch x := v.(type) {
	case string:
		r.probed = true
	case float64:
		r.got = append(r.got, int(x))
	}
	return nil
}

func (r *recorder) snapshot() ([]int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.got...), r.probed
}

func subscribe(t testing.TB, c *client.Client, filter string, opts ...client.SubOption) *recorder {
	t.Helper()
	r := &recorder{}
	if _, err := c.Subscribe(context.Background(), filter, r.handler, opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// probeUntil publishes probes on topic until every recorder saw one:
// interest has spread through the NATS cluster.
func probeUntil(t testing.TB, pub *client.Client, topic string, rs ...*recorder) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		all := true
		for _, r := range rs {
			if _, ok := r.snapshot(); !ok {
				all = false
			}
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("subscribers not reachable through the cluster")
		}
		if err := pub.Publish(context.Background(), topic, "probe"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, wait, 10*time.Millisecond, what, cond)
}

// exactlyInOrder checks that got is 0..n-1.
func exactlyInOrder(t testing.TB, who string, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d messages, want %d", who, len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("%s: message %d is %d", who, i, v)
		}
	}
}

func TestThreeNodes(t *testing.T) {
	ns := clustertest.StartNATSCluster(t, 3)
	var nodes []*node
	for i := range ns {
		// each node prefers its own NATS server, and knows the others
		urls := []string{natsURL(ns[i])}
		for j := range ns {
			if j != i {
				urls = append(urls, natsURL(ns[j]))
			}
		}
		nodes = append(nodes, startNode(t, urls...))
	}
	var plain, wild []*recorder
	group := make([]*recorder, 3)
	for i, n := range nodes {
		c := connect(t, n.url)
		plain = append(plain, subscribe(t, c, "t/x"))
		wild = append(wild, subscribe(t, c, "t/+"))
		group[i] = subscribe(t, c, "t/#", client.Group("workers"))
	}
	pub := connect(t, nodes[0].url)
	probeUntil(t, pub, "t/x", append(append([]*recorder{}, plain...), wild...)...)
	// the group needs its own probes: each probe reaches one member only
	eventually(t, "group members reachable", func() bool {
		_ = pub.Publish(context.Background(), "t/x", "probe")
		for _, r := range group {
			if _, ok := r.snapshot(); !ok {
				return false
			}
		}
		return true
	})
	const n = 500
	for i := 0; i < n; i++ {
		if err := pub.Publish(context.Background(), "t/x", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		eventually(t, "deliveries", func() bool {
			p, _ := plain[i].snapshot()
			w, _ := wild[i].snapshot()
			return len(p) >= n && len(w) >= n
		})
		p, _ := plain[i].snapshot()
		w, _ := wild[i].snapshot()
		exactlyInOrder(t, fmt.Sprintf("node %d t/x", i), p, n)
		exactlyInOrder(t, fmt.Sprintf("node %d t/+", i), w, n)
	}
	// the group: each message once across all nodes
	counts := make(map[int]int)
	eventually(t, "group deliveries", func() bool {
		total := 0
		for _, r := range group {
			g, _ := r.snapshot()
			total += len(g)
		}
		return total >= n
	})
	for i, r := range group {
		g, _ := r.snapshot()
		for _, v := range g {
			counts[v]++
		}
		t.Logf("group member on node %d: %d messages", i, len(g))
	}
	for v := 0; v < n; v++ {
		if counts[v] != 1 {
			t.Fatalf("message %d reached the group %d times", v, counts[v])
		}
	}

	// retained: published on node 0, seen on node 2, and on a node started later
	if err := pub.Publish(context.Background(), "state/lamp", "on", client.Retain()); err != nil {
		t.Fatal(err)
	}
	checkRetained := func(n *node) {
		c := connect(t, n.url)
		got := make(chan *client.Message, 1)
		eventually(t, "retained value", func() bool {
			s, err := c.Subscribe(context.Background(), "state/#", func(m *client.Message) error { got <- m; return nil })
			if err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if !m.Retained || string(m.Data) != `"on"` {
					t.Fatalf("retained %+v", m)
				}
				return true
			case <-time.After(100 * time.Millisecond):
				_ = s.Unsubscribe(context.Background())
				return false
			}
		})
	}
	checkRetained(nodes[2])
	late := startNode(t, natsURL(ns[1]))
	checkRetained(late)

	// a node leaving does not disturb the others
	nodes[1].stop()
	base0, _ := plain[0].snapshot()
	base2, _ := plain[2].snapshot()
	for i := n; i < n+100; i++ {
		if err := pub.Publish(context.Background(), "t/x", i); err != nil {
			t.Fatal(err)
		}
	}
	for k, r := range []*recorder{plain[0], plain[2]} {
		base := []int{len(base0), len(base2)}[k]
		eventually(t, "deliveries after a node left", func() bool { g, _ := r.snapshot(); return len(g) >= base+100 })
		g, _ := r.snapshot()
		exactlyInOrder(t, "after a node left", g, n+100)
	}
}

func TestNATSServerKilled(t *testing.T) {
	ns := clustertest.StartNATSCluster(t, 3)
	all := func(first int) []string {
		urls := []string{natsURL(ns[first])}
		for j := range ns {
			if j != first {
				urls = append(urls, natsURL(ns[j]))
			}
		}
		return urls
	}
	n0, n2 := startNode(t, all(0)...), startNode(t, all(2)...)
	sub0, sub2 := connect(t, n0.url), connect(t, n2.url)
	r0, r2 := subscribe(t, sub0, "k"), subscribe(t, sub2, "k")
	pub := connect(t, n0.url)
	probeUntil(t, pub, "k", r0, r2)
	const n = 400
	for i := 0; i < n; i++ {
		if i == n/4 {
			ns[2].Shutdown() // node 2's NATS server dies mid-stream
		}
		if err := pub.Publish(context.Background(), "k", i); err != nil {
			t.Fatal(err)
		}
		if i > n/4 && i%50 == 0 {
			time.Sleep(50 * time.Millisecond) // give node 2 time to reconnect
		}
	}
	eventually(t, "node 0 has everything", func() bool { g, _ := r0.snapshot(); return len(g) >= n })
	g0, _ := r0.snapshot()
	exactlyInOrder(t, "node 0", g0, n)
	// node 2 reconnects through another server: it may miss messages
	// while disconnected, but it gets the last ones, in order, no twice
	eventually(t, "node 2 resumed", func() bool {
		g, _ := r2.snapshot()
		return len(g) > 0 && g[len(g)-1] == n-1
	})
	g2, _ := r2.snapshot()
	for i := 1; i < len(g2); i++ {
		if g2[i] <= g2[i-1] {
			t.Fatalf("node 2: %d after %d (duplicate or out of order)", g2[i], g2[i-1])
		}
	}
	t.Logf("node 2 received %d of %d across the failover", len(g2), n)
}

func TestNATSDownEntirely(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	port := s.Addr().(*net.TCPAddr).Port
	n1, n2 := startNode(t, natsURL(s)), startNode(t, natsURL(s))
	local := connect(t, n1.url)
	remote := connect(t, n2.url)
	rl, rr := subscribe(t, local, "d"), subscribe(t, remote, "d")
	pub := connect(t, n1.url)
	probeUntil(t, pub, "d", rl, rr)

	s.Shutdown()
	eventually(t, "node sees NATS down", func() bool { return !n1.c.Connected() })
	// local pub/sub goes on
	before, _ := rl.snapshot()
	if err := pub.Publish(context.Background(), "d", 1000); err != nil {
		t.Fatal(err)
	}
	eventually(t, "local delivery", func() bool { g, _ := rl.snapshot(); return len(g) == len(before)+1 })
	if st := n1.b.Stats(); st.Cluster == nil || st.Cluster.LocalOnly == 0 || st.Cluster.Connected {
		t.Fatalf("cluster status %+v", st.Cluster)
	}

	// NATS returns on the same port: cross-node delivery resumes
	clustertest.StartNATS(t, clustertest.NATSOptions{Port: port})
	eventually(t, "nodes reconnected", func() bool { return n1.c.Connected() && n2.c.Connected() })
	eventually(t, "remote delivery again", func() bool {
		_ = pub.Publish(context.Background(), "d", 2000)
		g, _ := rr.snapshot()
		return len(g) > 0 && g[len(g)-1] == 2000
	})
}

func TestInterestOnly(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	n1, n2 := startNode(t, natsURL(s)), startNode(t, natsURL(s))
	c1 := connect(t, n1.url)
	r1 := subscribe(t, c1, "busy/#")
	pub := connect(t, n1.url)
	probeUntil(t, pub, "busy/x", r1)
	for i := 0; i < 100; i++ {
		if err := pub.Publish(context.Background(), "busy/x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "node 1 received", func() bool { g, _ := r1.snapshot(); return len(g) == 100 })
	// node 2 has no subscriber: no NATS traffic reached it (node 1's
	// counter shows that it counts)
	if got := n1.b.Stats().Cluster.Received; got < 100 {
		t.Fatalf("node 1 counted %d received messages, want at least 100", got)
	}
	if st := n2.b.Stats(); st.Cluster.Received != 0 {
		t.Fatalf("node 2 received %d messages it has no interest in", st.Cluster.Received)
	}
	// once the last local subscriber leaves, node 1 stops receiving too
	_ = c1.Close()
	eventually(t, "interest withdrawn", func() bool {
		return n1.b.Stats().Subscriptions == 0
	})
	before := n1.b.Stats().Cluster.Received
	for i := 0; i < 50; i++ {
		if err := pub.Publish(context.Background(), "busy/x", i); err != nil {
			t.Fatal(err)
		}
	}
	if st := n1.b.Stats(); st.Cluster.Received != before {
		t.Fatalf("node 1 received %d after its subscribers left", st.Cluster.Received-before)
	}
}

func TestGroupsKeyedByFilter(t *testing.T) {
	// group "w" on two overlapping filters is two groups: each gets every
	// message; and a group on '#' gets no '$' topics
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	n1, n2 := startNode(t, natsURL(s)), startNode(t, natsURL(s))
	a := subscribe(t, connect(t, n1.url), "j/+", client.Group("w"))
	b := subscribe(t, connect(t, n2.url), "j/#", client.Group("w"))
	pub := connect(t, n1.url)
	probeUntil(t, pub, "j/x", a, b)
	for i := 0; i < 100; i++ {
		if err := pub.Publish(context.Background(), "j/x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both groups", func() bool {
		ga, _ := a.snapshot()
		gb, _ := b.snapshot()
		return len(ga) == 100 && len(gb) == 100
	})
	sys := subscribe(t, connect(t, n2.url), "#", client.Group("all"))
	if err := n1.b.Publish(context.Background(), broker.Message{Topic: "$SYS/x", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// a probe from the same publisher comes after the $SYS message
	eventually(t, "probe after $SYS", func() bool {
		if err := n1.b.Publish(context.Background(), broker.Message{Topic: "j/y", Data: []byte(`"probe"`)}); err != nil {
			t.Fatal(err)
		}
		_, ok := sys.snapshot()
		return ok
	})
	if g, _ := sys.snapshot(); len(g) != 0 {
		t.Fatalf("group on # got $ topics: %v", g)
	}
}
