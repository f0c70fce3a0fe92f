package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

func connect(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := client.Connect(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestPublishSubscribe(t *testing.T) {
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		t.Run(codec.String(), func(t *testing.T) {
			tb := newTestBroker(t, broker.Options{})
			ctx := context.Background()
			c := connect(t, tb.url(), client.WithCodec(codec))
			got := make(chan *client.Message, 10)
			sub, err := c.Subscribe(ctx, "sensors/+/temp", func(m *client.Message) error { got <- m; return nil })
			if err != nil {
				t.Fatal(err)
			}
			type reading struct {
				Celsius float64 `json:"celsius" msgpack:"celsius"`
			}
			if err := c.Publish(ctx, "sensors/a/temp", reading{21.5}); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, "sensors/b/temp", json.RawMessage(`{"celsius":-3}`)); err != nil {
				t.Fatal(err)
			}
			raw, _ := msgpack.Marshal(map[string]any{"celsius": 7})
			if err := c.Publish(ctx, "sensors/c/temp", msgpack.RawMessage(raw)); err != nil {
				t.Fatal(err)
			}
			for _, want := range []float64{21.5, -3, 7} {
				m := <-got
				var r reading
				if err := m.Decode(&r); err != nil || r.Celsius != want || m.Codec != codec {
					t.Fatalf("got %+v %v", r, err)
				}
			}
			// []byte is binary data
			if err := c.Publish(ctx, "sensors/d/temp", []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			m := <-got
			var b []byte
			if err := m.Decode(&b); err != nil || string(b) != "\x01\x02\x03" {
				t.Fatalf("bytes: %v %v", b, err)
			}
			if err := sub.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, "sensors/e/temp", 1); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				t.Fatalf("delivery after Unsubscribe: %s", m.Topic)
			case <-time.After(50 * time.Millisecond):
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c := connect(t, tb.url())
	err := c.Publish(ctx, "$SYS/x", 1)
	var perr *client.Error
	if !errors.As(err, &perr) || perr.Code != protocol.CodeForbidden {
		t.Fatalf("publish to $SYS: %v", err)
	}
	if err := c.Publish(ctx, "a/+", 1); !errors.As(err, &perr) || perr.Code != protocol.CodeBadTopic {
		t.Fatalf("wildcard publish: %v", err)
	}
	if _, err := c.Subscribe(ctx, "a/#/b", func(*client.Message) error { return nil }); !errors.As(err, &perr) || perr.Code != protocol.CodeBadTopic {
		t.Fatalf("bad filter: %v", err)
	}
	if err := c.Publish(ctx, "a", make(chan int)); err == nil {
		t.Fatal("unmarshalable data accepted")
	}
	if _, err := client.Connect(ctx, "http://x"); err == nil {
		t.Fatal("http URL accepted")
	}
	if _, err := client.Connect(ctx, tb.url(), client.WithReconnect(time.Second, time.Millisecond, 2)); err == nil {
		t.Fatal("bad backoff accepted")
	}
	_ = c.Close()
	if err := c.Publish(ctx, "a", 1); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("publish after Close: %v", err)
	}
	if c.Status() != client.Closed {
		t.Fatalf("status %v", c.Status())
	}
}

func TestBufferFull(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	c := connect(t, tb.url(), client.WithPublishBuffer(5, 1<<20), client.WithReconnect(time.Hour, time.Hour, 2))
	slow := connect(t, tb.url(), client.WithPublishBuffer(5, 1<<20), client.WithFailFast(), client.WithReconnect(time.Hour, time.Hour, 2))
	tb.stop() // no broker: publishes stay buffered
	eventually(t, "disconnected", func() bool { return c.Status() != client.Connected && slow.Status() != client.Connected })
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if err := c.PublishNoAck(ctx, "t", i); err != nil {
			t.Fatal(err)
		}
		if err := slow.PublishNoAck(ctx, "t", i); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := c.Buffered(); n != 5 {
		t.Fatalf("buffered %d", n)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.PublishNoAck(short, "t", 6); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("publish into a full buffer: %v", err)
	}
	if err := c.Publish(short, "t", 6); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acked publish into a full buffer: %v", err)
	}
	if err := slow.PublishNoAck(ctx, "t", 6); !errors.Is(err, client.ErrBufferFull) {
		t.Fatalf("fail-fast publish into a full buffer: %v", err)
	}
	// a publish waiting for room ends with Close
	errc := make(chan error, 1)
	go func() { errc <- c.Publish(ctx, "t", 7) }()
	time.Sleep(20 * time.Millisecond) // let it wait
	_ = c.Close()
	if err := <-errc; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("publish waiting during Close: %v", err)
	}
}

func TestBufferedWhileDisconnected(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var connects atomic.Int32
	sub := connect(t, tb.url(), client.WithReconnect(10*time.Millisecond, 50*time.Millisecond, 2),
		client.OnStatus(func(s client.Status, _ error) {
			if s == client.Connected {
				connects.Add(1)
			}
		}))
	got := make(chan int, 100)
	if _, err := sub.Subscribe(ctx, "q", func(m *client.Message) error {
		var v int
		_ = m.Decode(&v)
		got <- v
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// the publisher goes through a gate, opened once the subscriber is back
	gate := newProxy(t, tb.addr)
	pub := connect(t, gate.url(), client.WithReconnect(10*time.Millisecond, 50*time.Millisecond, 2))
	gate.gated.Store(true)
	tb.stop()
	eventually(t, "disconnected", func() bool { return pub.Status() != client.Connected })
	futures := make([]*client.PublishFuture, 10)
	for i := range futures {
		f, err := pub.PublishAsync(ctx, "q", i)
		if err != nil {
			t.Fatal(err)
		}
		futures[i] = f
	}
	before := connects.Load()
	tb.start()
	eventually(t, "subscriber back", func() bool { return connects.Load() > before })
	gate.gated.Store(false)
	for i, f := range futures {
		<-f.Done()
		if f.Err() != nil {
			t.Fatalf("publish %d: %v", i, f.Err())
		}
	}
	// sent in order after the reconnect
	for i := 0; i < 10; i++ {
		select {
		case v := <-got:
			if v != i {
				t.Fatalf("got %d, want %d", v, i)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("message %d not received", i)
		}
	}
}

// TestBrokerRestart: an acked publisher sends 10,000 messages while the
// broker is stopped and started again; the subscriber (ack mode, session)
// gets every one.
func TestBrokerRestart(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	fast := client.WithReconnect(20*time.Millisecond, 200*time.Millisecond, 2)
	var connects atomic.Int32
	sub := connect(t, tb.url(), fast, client.OnStatus(func(s client.Status, _ error) {
		if s == client.Connected {
			connects.Add(1)
		}
	}))
	var mu sync.Mutex
	got := make(map[int]bool)
	s, err := sub.Subscribe(ctx, "restart/#", func(m *client.Message) error {
		var v int
		if err := m.Decode(&v); err != nil {
			return err
		}
		mu.Lock()
		got[v] = true
		mu.Unlock()
		return nil
	}, client.AckMode(64))
	if err != nil {
		t.Fatal(err)
	}
	// the publisher goes through a gate, opened once the subscriber is back:
	// a message routed while nobody is subscribed reaches nobody
	gate := newProxy(t, tb.addr)
	pub := connect(t, gate.url(), fast, client.WithPublishBuffer(500, 1<<20))
	const n = 10000
	var acked atomic.Int64
	errc := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			f, err := pub.PublishAsync(ctx, "restart/x", i)
			if err != nil {
				errc <- err
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-f.Done()
				if f.Err() == nil {
					acked.Add(1)
				} else {
					errc <- f.Err()
				}
			}()
		}
		wg.Wait()
		errc <- nil
	}()
	eventually(t, "a third published", func() bool { return acked.Load() > n/3 })
	gate.gated.Store(true)
	before := connects.Load()
	tb.stop()
	tb.start()
	eventually(t, "subscriber back", func() bool { return connects.Load() > before })
	gate.gated.Store(false)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if acked.Load() != n {
		t.Fatalf("acked %d of %d", acked.Load(), n)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		mu.Lock()
		have := len(got)
		mu.Unlock()
		if have == n {
			break
		}
		if time.Now().After(deadline) {
			var missing []int
			mu.Lock()
			for i := 0; i < n && len(missing) < 10; i++ {
				if !got[i] {
					missing = append(missing, i)
				}
			}
			mu.Unlock()
			t.Fatalf("subscriber has %d of %d (dropped by the client: %d); first missing: %v", have, n, s.Dropped(), missing)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSlowAckHandlerBounded(t *testing.T) {
	// a slow handler on an acknowledged subscription: the broker's window
	// and queue hold the rest, the client never holds more than the window,
	// and nothing is lost
	const inflight, ackQueue = 16, 200
	tb := newTestBroker(t, broker.Options{AckQueue: ackQueue, AckStall: time.Minute})
	ctx := context.Background()
	sub := connect(t, tb.url())
	var received atomic.Int64
	var maxPending atomic.Int64
	var s *client.Subscription
	ready := make(chan struct{})
	s, err := sub.Subscribe(ctx, "flood", func(m *client.Message) error {
		<-ready
		if p, _ := s.Pending(); int64(p) > maxPending.Load() {
			maxPending.Store(int64(p))
		}
		received.Add(1)
		return nil
	}, client.AckMode(inflight))
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	// the publisher is held by the broker (backpressure) while the handler
	// catches up; on a busy machine that can outlast the keepalive's 15 s
	// of silence, which would replace the connection and lose what it was
	// sending: this test pins the bounds, so the keepalive waits longer
	pub := connect(t, tb.url(), client.WithPing(time.Minute, time.Minute))
	const n = 100000
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := pub.PublishNoAck(ctx, "flood", i); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	var maxBrokerPending, maxBrokerInflight int
	deadline := time.Now().Add(5 * time.Minute)
	for received.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages received after 5 minutes", received.Load(), n)
		}
		st := tb.broker().Stats()
		maxBrokerPending = max(maxBrokerPending, st.AckPending)
		maxBrokerInflight = max(maxBrokerInflight, st.AckInflight)
		if st.Dropped != 0 || st.SlowConsumers != 0 {
			t.Fatalf("broker lost messages: %+v", st)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			done = nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	if maxBrokerPending > ackQueue || maxBrokerInflight > inflight || maxPending.Load() > inflight {
		t.Fatalf("bounds exceeded: broker pending %d inflight %d, client pending %d", maxBrokerPending, maxBrokerInflight, maxPending.Load())
	}
	if s.Dropped() != 0 {
		t.Fatalf("client dropped %d", s.Dropped())
	}
	t.Logf("broker max pending %d, max inflight %d; client max pending %d", maxBrokerPending, maxBrokerInflight, maxPending.Load())
}

func TestSlowPlainHandlerDrops(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var reported atomic.Uint64
	c := connect(t, tb.url(), client.WithPending(10, 1<<20), client.OnError(func(err error) {
		var sc *client.SlowConsumerError
		if errors.As(err, &sc) && errors.Is(err, client.ErrSlowConsumer) {
			reported.Add(sc.Dropped)
		}
	}))
	release := make(chan struct{})
	var handled atomic.Int64
	s, err := c.Subscribe(ctx, "burst", func(*client.Message) error { <-release; handled.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if err := c.Publish(ctx, "burst", i); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	eventually(t, "drops counted", func() bool {
		return handled.Load()+int64(s.Dropped()) == 100
	})
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped")
	}
	if p, _ := s.Pending(); p > 10 {
		t.Fatalf("pending %d", p)
	}
	// the last drops are reported with the next delivery
	if err := c.Publish(ctx, "burst", 100); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drops reported", func() bool { return reported.Load() == s.Dropped() })
}

func TestKeepaliveDetectsDeadConnection(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	for _, mode := range []string{"cut", "blackhole"} {
		t.Run(mode, func(t *testing.T) {
			p := newProxy(t, tb.addr)
			var mu sync.Mutex
			var lostAt, backAt time.Time
			c := connect(t, p.url(),
				client.WithPing(100*time.Millisecond, 100*time.Millisecond),
				client.WithReconnect(10*time.Millisecond, 50*time.Millisecond, 2),
				client.OnStatus(func(s client.Status, err error) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case s == client.Disconnected && lostAt.IsZero():
						lostAt = time.Now()
					case s == client.Connected && !lostAt.IsZero() && backAt.IsZero():
						backAt = time.Now()
					}
				}))
			ctx := context.Background()
			got := make(chan int, 10)
			if _, err := c.Subscribe(ctx, "k", func(m *client.Message) error {
				var v int
				_ = m.Decode(&v)
				got <- v
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if mode == "cut" {
				p.cut()
			} else {
				p.blackhole()
			}
			eventually(t, "reconnected", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return !backAt.IsZero()
			})
			mu.Lock()
			noticed := lostAt.Sub(start)
			mu.Unlock()
			// the bound is ping interval + timeout (200 ms) plus one check
			// period; allow generously for a loaded machine
			if noticed > 2*time.Second {
				t.Fatalf("noticed after %v", noticed)
			}
			t.Logf("%s noticed after %v", mode, noticed.Round(time.Millisecond))
			if err := c.Publish(ctx, "k", 42); err != nil {
				t.Fatal(err)
			}
			if v := <-got; v != 42 {
				t.Fatalf("got %d", v)
			}
		})
	}
}

func TestDrain(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c := connect(t, tb.url())
	var handled atomic.Int64
	release := make(chan struct{})
	if _, err := c.Subscribe(ctx, "d", func(*client.Message) error { <-release; handled.Add(1); return nil }); err != nil {
		t.Fatal(err)
	}
	var futures []*client.PublishFuture
	for i := 0; i < 20; i++ {
		f, err := c.PublishAsync(ctx, "d", i)
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	eventually(t, "all acked", func() bool {
		n, _ := c.Buffered()
		return n == 0
	})
	close(release)
	dctx, cancel := context.WithTimeout(ctx, waitTimeout)
	defer cancel()
	if err := c.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	if handled.Load() != 20 {
		t.Fatalf("handled %d of 20 before Drain returned", handled.Load())
	}
	for _, f := range futures {
		if f.Err() != nil {
			t.Fatal(f.Err())
		}
	}
	if c.Status() != client.Closed {
		t.Fatalf("status %v", c.Status())
	}
}

// TestReconnectSpread: 1000 clients lose their broker at once; their
// reconnect attempts spread over the backoff window instead of arriving
// together.
func TestReconnectSpread(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 connections")
	}
	tb := newTestBroker(t, broker.Options{})
	const n = 1000
	window := time.Second
	var mu sync.Mutex
	var attempts []time.Duration
	var lost time.Time
	clients := make([]*client.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// each client's first attempt, timed from its own disconnect:
			// the backoff starts there (the broker's shutdown of a
			// thousand connections takes a while on a busy machine)
			first := true
			var down time.Time
			clients[i] = connect(t, tb.url(),
				client.WithReconnect(window, 4*window, 2),
				client.WithPing(time.Minute, time.Minute),
				client.OnStatus(func(s client.Status, _ error) {
					mu.Lock()
					defer mu.Unlock()
					if lost.IsZero() || !first {
						return
					}
					switch s {
					case client.Disconnected:
						if down.IsZero() {
							down = time.Now()
						}
					case client.Reconnecting:
						if !down.IsZero() {
							first = false
							attempts = append(attempts, time.Since(down))
						}
					}
				}))
		}()
	}
	wg.Wait()
	// connections count as stable (resetting the backoff) after a second
	time.Sleep(1100 * time.Millisecond)
	mu.Lock()
	lost = time.Now()
	mu.Unlock()
	tb.stop()
	eventually(t, "every client attempted", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(attempts) == n
	})
	tb.start()
	for _, c := range clients {
		eventually(t, "reconnected", func() bool { return c.Status() == client.Connected })
	}
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(attempts, func(i, j int) bool { return attempts[i] < attempts[j] })
	// full jitter: first attempts uniform over [0, window). Ten buckets:
	// none may hold more than a quarter of the clients (a herd would put
	// them all in one), and the spread covers most of the window.
	var buckets [10]int
	for _, a := range attempts {
		k := int(a * 10 / window)
		if k > 9 {
			k = 9
		}
		buckets[k]++
	}
	for k, c := range buckets {
		if c > n/4 {
			t.Fatalf("bucket %d holds %d of %d attempts: %v", k, c, n, buckets)
		}
	}
	if spread := attempts[n*95/100] - attempts[n*5/100]; spread < window/2 {
		t.Fatalf("90%% of attempts within %v", spread)
	}
	t.Logf("first attempts per tenth of the window: %v", buckets)
}
