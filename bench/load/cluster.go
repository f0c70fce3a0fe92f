package load

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// probeNs is the send time stamped in warm-up probes. Real messages carry
// a Unix time in ns (about 1.7e18); subscribers take anything below
// probeLimit for a probe and neither count nor time it.
const (
	probeNs    = 1
	probeLimit = 1 << 40
)

// ClusterName is the row label of the cluster scenario: "single" for one
// node, "cluster<nodes>" otherwise.
func ClusterName(nodes int) string {
	if nodes <= 1 {
		return "single"
	}
	return fmt.Sprintf("cluster%d", nodes)
}

// Cluster is the fanout load across ferry nodes: n subscribers on one
// topic, split evenly over the nodes, one publisher on the first node
// sending m messages of size bytes with fanout's window. With nodes == 1 it
// is a plain `ferry serve`; with more, one natsd process (plain NATS client
// port) and `ferry serve --nats nats://127.0.0.1:<port>` per node. Interest
// spreads through NATS asynchronously, so before measuring the publisher
// sends probes (which subscribers ignore) until every subscriber has seen
// one. Broker CPU and RSS are summed over the ferry processes; the NATS
// server's are reported apart.
func Cluster(ctx context.Context, cfg Config, t Target, nodes, n, m, size int) Result {
	cfg.defaults()
	r := Result{Scenario: "cluster", Case: fmt.Sprintf("N=%d M=%d P=%d", n, m, size),
		Target: t.Name + " " + ClusterName(nodes), Nodes: nodes,
		RateUnit: "deliveries/s", Expected: int64(n) * int64(m), Conns: n + 1}
	if !t.IsFerry() {
		r.Err = "ferry targets only"
		return r
	}
	if nodes < 1 {
		nodes = 1
	}
	var extra []string
	var nats *Proc
	if nodes > 1 {
		var err error
		nats, err = StartProc(cfg.Bins.NATSD, []string{"-port", "{port}", "-ws-port", "0"}, "nats://127.0.0.1:%d")
		if err != nil {
			r.Err = "natsd: " + err.Error()
			return r
		}
		defer nats.Stop() // deferred first: stops after the ferry nodes
		extra = []string{"--nats", nats.URL}
	}
	procs := make([]*Proc, 0, nodes)
	for i := 0; i < nodes; i++ {
		p, args, err := startFerry(&cfg, fmt.Sprintf("%s %s %s node%d", r.Scenario, r.Case, r.Target, i+1), extra...)
		if err != nil {
			r.Err = fmt.Sprintf("node %d: %v", i+1, err)
			return r
		}
		defer p.Stop()
		procs = append(procs, p)
		r.BrokerArgs = args
	}

	const topic = "bench/cluster"
	var count, ready atomic.Int64
	var subs []Conn
	var sinks []*sink
	defer func() { closeAll(subs) }()
	for i, p := range procs {
		k := n / nodes
		if i < n%nodes {
			k++
		}
		cs, ss, err := probedSubscribers(ctx, &cfg, t, p.URL, topic, k, m, &count, &ready)
		subs, sinks = append(subs, cs...), append(sinks, ss...)
		if err != nil {
			r.Err = fmt.Sprintf("node %d: %v", i+1, err)
			return r
		}
	}
	pub, err := Dial(t, procs[0].URL, size)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pub.Close()

	// warm-up: probes until every subscriber is reachable from node 1
	began, probes := time.Now(), 0
	for ready.Load() < int64(len(subs)) {
		if time.Since(began) > cfg.Stall || ctx.Err() != nil {
			r.Err = fmt.Sprintf("only %d of %d subscribers reachable after %d probes in %v",
				ready.Load(), len(subs), probes, time.Since(began).Round(time.Millisecond))
			return r
		}
		if err := pub.Publish(topic, probeNs); err != nil {
			r.Err = "probe: " + err.Error()
			return r
		}
		probes++
		_ = waitCtx(ctx, 5*time.Millisecond)
	}
	warm := time.Since(began)
	_ = pub.Flush(cfg.Stall)
	_ = waitCtx(ctx, 50*time.Millisecond) // let the last probes drain
	r.Note = fmt.Sprintf("all %d subscribers reachable after %d probe(s), %.0f ms;", len(subs), probes, float64(warm)/1e6)

	cpu0 := make([]time.Duration, len(procs))
	for i, p := range procs {
		cpu0[i] = p.CPU()
	}
	var natsCPU0 time.Duration
	if nats != nil {
		natsCPU0 = nats.CPU()
	}
	self0 := selfCPU()
	start := time.Now()
	publishWindowed(ctx, &cfg, &r, pub, topic, n, m, &count)
	last := waitCount(ctx, &count, r.Expected, cfg.Stall)
	for i, p := range procs {
		r.BrokerCPUs += (p.CPU() - cpu0[i]).Seconds()
		r.BrokerRSS += p.RSS()
		r.BrokerPeak += p.PeakRSS()
		if !p.Alive() {
			r.Note += fmt.Sprintf(" node %d exited: %s;", i+1, p.Output())
		}
	}
	r.LoadGenCPUs = (selfCPU() - self0).Seconds()
	if nats != nil {
		r.NATSCPUs = (nats.CPU() - natsCPU0).Seconds()
		r.NATSRSS = nats.RSS()
		if !nats.Alive() {
			r.Note += " natsd exited: " + nats.Output() + ";"
		}
	}
	r.conclude(&count, last.Sub(start), append(subs, pub), &subs, sinks)
	return r
}

// probedSubscribers is subscribers for the cluster scenario: a message
// stamped below probeLimit is a probe, which marks its subscriber ready
// (ready counts the subscribers that saw one) and is otherwise ignored.
func probedSubscribers(ctx context.Context, cfg *Config, t Target, url, topic string, n, capHint int, count, ready *atomic.Int64) ([]Conn, []*sink, error) {
	sinks := make([]*sink, n)
	conns, err := dialMany(ctx, cfg, t, url, n, 8, func(i int, c Conn) error {
		s := &sink{lat: make([]int64, 0, capHint)}
		sinks[i] = s
		seen := false // onMsg runs on one goroutine per connection
		return c.Subscribe(topic, func(sent int64) {
			if sent < probeLimit {
				if !seen && sent == probeNs {
					seen = true
					ready.Add(1)
				}
				return
			}
			d := time.Now().UnixNano() - sent
			s.mu.Lock()
			s.lat = append(s.lat, d)
			s.mu.Unlock()
			count.Add(1)
		})
	})
	return conns, sinks, err
}

// clusterBase returns the target of a cluster row without its node label
// ("ferry-json cluster2" → "ferry-json").
func clusterBase(target string) string {
	b, _, _ := strings.Cut(target, " ")
	return b
}
