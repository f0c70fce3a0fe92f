// Package bench holds ferry's benchmarks that span several components.
//
//	go test -run '^$' -bench Cluster -benchtime 2000x ./bench
package main

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/ferry-io/ferry/natscluster"
	"github.com/ferry-io/ferry/protocol"
)

// node serves a broker on 127.0.0.1.
func node(b *testing.B, cl broker.Cluster) string {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	br, err := broker.New(broker.Options{Cluster: cl, Logger: log, MaxStall: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: br, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = br.Shutdown(ctx)
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

// latencies collects delivery latencies from many subscribers.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
	n   atomic.Int64
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return 0
	}
	slices.Sort(l.all)
	return l.all[int(float64(len(l.all)-1)*p)]
}

// fanout: subsPerNode subscribers on each node URL, one publisher on the
// first; every message carries its send time.
func fanout(b *testing.B, urls []string, subsPerNode int) {
	ctx := context.Background()
	var lat latencies
	total := int64(b.N) * int64(subsPerNode*len(urls))
	done := make(chan struct{})
	var ready sync.WaitGroup
	var clients []*client.Client
	for _, u := range urls {
		for i := 0; i < subsPerNode; i++ {
			c, err := client.Connect(ctx, u, client.WithCodec(protocol.Msgpack), client.WithPending(1<<20, 1<<30))
			if err != nil {
				b.Fatal(err)
			}
			clients = append(clients, c)
			var local []time.Duration
			var warm sync.Once
			ready.Add(1)
			_, err = c.Subscribe(ctx, "bench/fanout", func(m *client.Message) error {
				var p []byte
				if err := m.Decode(&p); err != nil || len(p) < 8 {
					return nil
				}
				sent := int64(binary.BigEndian.Uint64(p))
				if sent == 0 { // warm-up probe
					warm.Do(ready.Done)
					return nil
				}
				local = append(local, time.Duration(time.Now().UnixNano()-sent))
				if len(local) == b.N {
					lat.add(local)
				}
				if lat.n.Add(1) == total {
					close(done)
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	pub, err := client.Connect(ctx, urls[0], client.WithCodec(protocol.Msgpack))
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	payload := make([]byte, 128)
	// probes until every subscriber is reachable (interest spreads through NATS)
	warmed := make(chan struct{})
	go func() { ready.Wait(); close(warmed) }()
	for probing := true; probing; {
		if err := pub.Publish(ctx, "bench/fanout", payload); err != nil {
			b.Fatal(err)
		}
		select {
		case <-warmed:
			probing = false
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // let the probes drain
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		p := make([]byte, 128)
		binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
		if err := pub.PublishNoAck(ctx, "bench/fanout", p); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("delivered %d of %d", lat.n.Load(), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(total)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat.percentile(0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat.percentile(0.99).Microseconds()), "p99-µs")
}

// BenchmarkClusterFanout compares one node with two nodes joined by NATS
// under the same load: 100 subscribers (50 per node in the cluster), one
// publisher, 128-byte msgpack payloads.
func BenchmarkClusterFanout(b *testing.B) {
	b.Run("single", func(b *testing.B) {
		fanout(b, []string{node(b, nil)}, 100)
	})
	b.Run("cluster2", func(b *testing.B) {
		ns := clustertest.StartNATS(b, clustertest.NATSOptions{})
		var urls []string
		for i := 0; i < 2; i++ {
			cl, err := natscluster.New(natscluster.Options{URLs: []string{ns.ClientURL()},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			urls = append(urls, node(b, cl))
		}
		fanout(b, urls, 50)
	})
}
