package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/lxzan/gws"
	"github.com/vmihailenco/msgpack/v5"
)

// benchData is the 128-byte JSON message the fan-out benchmarks publish.
var benchData = []byte(`{"device":"dev-0042","ts":1700000000,"temp":21.5,"hum":40.25,"pad":"` +
	strings.Repeat("x", 58) + `"}`)

const benchTopic = "bench/fanout"

// benchCounter counts message deliveries over all subscribers of a
// benchmark and closes done when the target is reached.
type benchCounter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

// benchSub is a minimal WebSocket subscriber: unlike the tests' client it
// does not decode or keep frames, it only counts them. The first frame it
// receives is the ack of its subscription; every later one is a message.
type benchSub struct {
	conn    *gws.Conn
	count   *benchCounter
	acked   chan struct{}
	ackSeen bool // read goroutine only
	ackErr  atomic.Pointer[string]
	closed  chan struct{}
}

func (s *benchSub) OnOpen(*gws.Conn)                  {}
func (s *benchSub) OnClose(*gws.Conn, error)          { close(s.closed) }
func (s *benchSub) OnPing(socket *gws.Conn, p []byte) { _ = socket.WritePong(p) }
func (s *benchSub) OnPong(*gws.Conn, []byte)          {}
func (s *benchSub) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if !s.ackSeen {
		s.ackSeen = true
		if !bytes.Contains(m.Bytes(), []byte("ack")) {
			e := fmt.Sprintf("subscription not acknowledged: %q", m.Bytes())
			s.ackErr.Store(&e)
		}
		close(s.acked)
		return
	}
	if s.count.n.Add(1) == s.count.target {
		close(s.count.done)
	}
}

// startFanout starts a broker with n WebSocket subscribers on benchTopic,
// every msgpackEvery-th of them speaking msgpack (0: all JSON), and waits
// until all subscriptions are acknowledged. Everything is closed when the
// benchmark ends.
func startFanout(b *testing.B, n, msgpackEvery int, count *benchCounter) *broker.Broker {
	b.Helper()
	br, url := startBroker(b, broker.Options{
		PingInterval: -1,
		// Stall the publisher (backpressure) rather than disconnect
		// subscribers as slow consumers when it runs ahead of the writers:
		// the benchmark measures throughput, not the overflow policy.
		MaxStall: 30 * time.Second,
	})
	subs := make([]*benchSub, n)
	// registered after startBroker's cleanup, so it runs before the
	// broker shuts down
	b.Cleanup(func() {
		for _, s := range subs {
			if s != nil && s.conn != nil {
				_ = s.conn.NetConn().Close()
			}
		}
		for i, s := range subs {
			if s == nil || s.conn == nil {
				continue
			}
			select {
			case <-s.closed:
			case <-time.After(waitTimeout):
				b.Errorf("subscriber %d did not close", i)
			}
		}
	})

	jsonSub := []byte(`{"op":"sub","topic":"` + benchTopic + `","id":1}`)
	mpSub, err := msgpack.Marshal(map[string]any{"op": "sub", "topic": benchTopic, "id": 1})
	if err != nil {
		b.Fatal(err)
	}
	// dial with a few workers: the handshakes are round trips
	const workers = 16
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				s := &benchSub{count: count, acked: make(chan struct{}), closed: make(chan struct{})}
				proto := "ferry.v1.json"
				if msgpackEvery > 0 && i%msgpackEvery == msgpackEvery-1 {
					proto = "ferry.v1.msgpack"
				}
				h := http.Header{}
				h.Set("Sec-WebSocket-Protocol", proto)
				conn, _, err := gws.NewClient(s, &gws.ClientOption{Addr: url, RequestHeader: h})
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				if got := conn.SubProtocol(); got != proto {
					errs <- fmt.Errorf("subscriber %d: negotiated %q, want %q", i, got, proto)
				}
				s.conn = conn
				subs[i] = s
				go conn.ReadLoop()
				if proto == "ferry.v1.msgpack" {
					err = conn.WriteMessage(gws.OpcodeBinary, mpSub)
				} else {
					err = conn.WriteMessage(gws.OpcodeText, jsonSub)
				}
				if err != nil {
					errs <- fmt.Errorf("subscribe %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for i, s := range subs {
		select {
		case <-s.acked:
		case <-deadline:
			b.Fatalf("subscriber %d: no ack within 30s", i)
		}
		if e := s.ackErr.Load(); e != nil {
			b.Fatalf("subscriber %d: %s", i, *e)
		}
	}
	if got := br.Stats().Subscriptions; got != int64(n) {
		b.Fatalf("broker holds %d subscriptions, want %d", got, n)
	}
	return br
}

// benchFanout publishes b.N messages in-process to n WebSocket subscribers
// and waits until every subscriber has received all of them.
func benchFanout(b *testing.B, n, msgpackEvery int) {
	if len(benchData) != 128 {
		b.Fatalf("message is %d bytes, want 128", len(benchData))
	}
	count := &benchCounter{target: int64(b.N) * int64(n), done: make(chan struct{})}
	br := startFanout(b, n, msgpackEvery, count)
	m := broker.Message{Topic: benchTopic, Data: benchData}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-count.done:
	case <-time.After(60 * time.Second):
		st := br.Stats()
		b.Fatalf("received %d of %d deliveries within 60s (stats: %+v)", count.n.Load(), count.target, st)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if st := br.Stats(); st.SlowConsumers != 0 || st.Dropped != 0 || st.Delivered != uint64(count.target) {
		b.Fatalf("stats after the run: %+v, want %d delivered and nothing dropped", st, count.target)
	}
	b.ReportMetric(float64(count.target)/elapsed.Seconds(), "deliveries/s")
}

// BenchmarkFanout1000 measures delivery of 128-byte JSON messages to 1,000
// JSON WebSocket subscribers over loopback.
func BenchmarkFanout1000(b *testing.B) { benchFanout(b, 1000, 0) }

// BenchmarkFanout1000Mixed is BenchmarkFanout1000 with every second
// subscriber on msgpack: each message is converted and encoded once per
// codec, so the cost should stay close to the all-JSON case.
func BenchmarkFanout1000Mixed(b *testing.B) { benchFanout(b, 1000, 2) }

// BenchmarkFanout1 is the single-subscriber baseline for the two above.
func BenchmarkFanout1(b *testing.B) { benchFanout(b, 1, 0) }

// BenchmarkFanin: 200 WebSocket publishers send b.N messages in all to
// telemetry/<device>/temp; one subscriber on telemetry/+/temp receives
// them. Reports msgs/s received.
func BenchmarkFanin(b *testing.B) {
	const pubs = 200
	count := &benchCounter{target: int64(b.N), done: make(chan struct{})}
	_, url := startBroker(b, broker.Options{PingInterval: -1})
	sub := &benchSub{count: count, acked: make(chan struct{}), closed: make(chan struct{})}
	conn, _, err := gws.NewClient(sub, &gws.ClientOption{Addr: url})
	if err != nil {
		b.Fatal(err)
	}
	sub.conn = conn
	go conn.ReadLoop()
	b.Cleanup(func() { _ = conn.NetConn().Close(); <-sub.closed })
	if err := conn.WriteString(`{"op":"sub","topic":"telemetry/+/temp","id":1}`); err != nil {
		b.Fatal(err)
	}
	<-sub.acked
	conns := make([]*gws.Conn, pubs)
	frames := make([][]byte, pubs)
	for i := range conns {
		c, _, err := gws.NewClient(gws.BuiltinEventHandler{}, &gws.ClientOption{Addr: url})
		if err != nil {
			b.Fatal(err)
		}
		go c.ReadLoop()
		conns[i] = c
		frames[i] = []byte(fmt.Sprintf(`{"op":"pub","topic":"telemetry/dev-%d/temp","data":{"t":21.5,"seq":1}}`, i))
	}
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.NetConn().Close()
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range conns {
		n := b.N / pubs
		if i < b.N%pubs {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < n; k++ {
				if err := c.WriteMessage(gws.OpcodeText, frames[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-count.done:
	case <-time.After(time.Minute):
		b.Fatalf("received %d of %d", count.n.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkPublishLocal measures Publish to one in-process subscription:
// the message goes through the subscription's bounded queue to its
// handler's goroutine. The queue never fills (the bound is far above what
// b.N messages take), so this is the cost of the queue and the hand-off,
// not of backpressure.
func BenchmarkPublishLocal(b *testing.B) {
	br, _ := startBroker(b, broker.Options{PingInterval: -1, QueueBytes: 1 << 30})
	count := &benchCounter{target: int64(b.N), done: make(chan struct{})}
	sub, err := br.Subscribe(benchTopic, func(*broker.Message) error {
		if count.n.Add(1) == count.target {
			close(count.done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	m := broker.Message{Topic: benchTopic, Data: benchData}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := br.Publish(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-count.done:
	case <-time.After(time.Minute):
		b.Fatalf("handled %d of %d", count.n.Load(), b.N)
	}
	b.StopTimer()
	if d := sub.Dropped(); d != 0 {
		b.Fatalf("%d messages dropped", d)
	}
}
