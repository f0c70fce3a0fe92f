package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

// burst publishes n messages from each of pubs goroutines in-process and
// returns once all publishes returned.
func burst(t *testing.T, b *broker.Broker, pubs, n int, topic string) {
	t.Helper()
	data, _ := json.Marshal(strings.Repeat("d", 200))
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := 0; p < pubs; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := b.Publish(context.Background(), broker.Message{Topic: topic, Data: data}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// A subscriber that keeps taking messages is not a slow consumer, even
// when it pauses for far longer than MaxStall: publishers wait for it
// (backpressure) and nothing is lost. With DrainTimeout disabled the same
// pause costs messages, which shows the load does fill the queue.
func TestDrainingQueueHoldsPublishers(t *testing.T) {
	for _, drain := range []time.Duration{0, -1} { // 0: the default, 2 s
		t.Run(fmt.Sprintf("DrainTimeout=%v", drain), func(t *testing.T) {
			b, _ := startBroker(t, broker.Options{QueueBytes: 4096, DrainTimeout: drain})
			var got atomic.Int64
			sub, err := b.Subscribe("burst", func(m *broker.Message) error {
				if got.Add(1) == 50 {
					time.Sleep(50 * time.Millisecond) // a pause: 10× MaxStall, 1/4 of the quiet limit
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			const pubs, n = 4, 500
			burst(t, b, pubs, n, "burst")
			eventually(t, "every message taken or dropped", func() bool {
				return got.Load()+int64(sub.Dropped()) == pubs*n
			})
			if drain < 0 {
				if sub.Dropped() == 0 {
					t.Fatal("nothing dropped with DrainTimeout disabled: the test load does not fill the queue")
				}
				return
			}
			if d := sub.Dropped(); d != 0 || got.Load() != pubs*n {
				t.Fatalf("%d delivered, %d dropped, want all %d delivered", got.Load(), d, pubs*n)
			}
		})
	}
}

// A subscriber that takes messages, however slowly, holds its publishers
// for as long as it keeps taking them, far beyond DrainTimeout, and loses
// nothing; one that takes nothing at all becomes a slow consumer once it
// has made no progress for DrainTimeout.
func TestDrainTimeoutIsAboutProgress(t *testing.T) {
	t.Run("slow", func(t *testing.T) {
		b, _ := startBroker(t, broker.Options{QueueBytes: 4096, DrainTimeout: 150 * time.Millisecond})
		var got atomic.Int64
		sub, err := b.Subscribe("sustained", func(m *broker.Message) error {
			time.Sleep(2 * time.Millisecond) // takes one every 2 ms
			got.Add(1)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		data, _ := json.Marshal(strings.Repeat("d", 200))
		const n = 300 // 600 ms of being full, 4 times DrainTimeout
		for range n {
			if err := b.Publish(context.Background(), broker.Message{Topic: "sustained", Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "every message handled", func() bool { return got.Load() == n })
		if d := sub.Dropped(); d != 0 {
			t.Fatalf("%d dropped for a subscriber that kept taking messages", d)
		}
	})
	t.Run("stuck", func(t *testing.T) {
		b, _ := startBroker(t, broker.Options{QueueBytes: 4096, DrainTimeout: 300 * time.Millisecond})
		release := make(chan struct{})
		sub, err := b.Subscribe("stuck", func(m *broker.Message) error {
			<-release
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		defer close(release)
		data, _ := json.Marshal(strings.Repeat("d", 200))
		start := time.Now()
		for i := 0; sub.Dropped() == 0; i++ {
			if i == 1000 {
				t.Fatal("no drop after 1000 publishes to a subscriber that takes nothing")
			}
			if err := b.Publish(context.Background(), broker.Message{Topic: "stuck", Data: data}); err != nil {
				t.Fatal(err)
			}
		}
		if el := time.Since(start); el < 300*time.Millisecond {
			t.Fatalf("first drop after %v, before DrainTimeout without progress", el)
		}
	})
}

// Fan-in over WebSocket: many publisher connections, fire and forget, into
// one subscriber whose queue is far smaller than the burst. The subscriber
// keeps reading, so it gets every message and is not disconnected.
func TestFaninBurstOverWebSocket(t *testing.T) {
	b, url := startBroker(t, broker.Options{QueueBytes: 32 << 10})
	sub := dial(t, url, protocol.SubprotocolMsgpack)
	sub.mustAck(map[string]any{"op": "sub", "topic": "telemetry/+/temp"})

	const pubs, n = 16, 2000
	payload := protocol.AppendMsgpackString(nil, strings.Repeat("t", 100))
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		pc := dialRaw(t, url, protocol.SubprotocolMsgpack)
		f := protocol.Append(protocol.Msgpack, nil, &protocol.Frame{Op: protocol.OpPub, Topic: fmt.Sprintf("telemetry/dev-%d/temp", p), Data: payload})
		wire := maskedFrame(0x2, f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, err := pc.nc.Write(wire); err != nil {
					return // reported below: the count falls short
				}
			}
		}()
	}
	for i := 0; i < pubs*n; i++ {
		if i == 2000 {
			// a pause far longer than MaxStall: the queue fills meanwhile
			time.Sleep(100 * time.Millisecond)
		}
		if r := sub.next(); r.f.op() != "msg" {
			t.Fatalf("after %d of %d messages: %s (stats %+v)", i, pubs*n, r.raw, b.Stats())
		}
	}
	wg.Wait()
	if st := b.Stats(); st.SlowConsumers != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	sub.alive()
}

// Frames that arrive together are read many per system call (read-ahead):
// a burst written at once, with frames larger than the read-ahead buffer
// among small ones and frames split across reads, comes through whole and
// in order, and so does a frame sent after the connection went quiet.
func TestReadAheadBurst(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	sub := dial(t, url)
	sub.mustAck(map[string]any{"op": "sub", "topic": "ahead"})
	pub := dialRaw(t, url, "")
	var wire []byte
	var want []string
	for i := 0; i < 3000; i++ {
		data := fmt.Sprintf(`"%d"`, i)
		if i%500 == 7 {
			data = `"` + strings.Repeat("L", 100<<10) + fmt.Sprint(i) + `"` // larger than the read-ahead buffer
		}
		want = append(want, data)
		wire = append(wire, maskedFrame(0x1, []byte(`{"op":"pub","topic":"ahead","data":`+data+`}`))...)
	}
	// one write, then the rest in odd-sized pieces so frames straddle reads
	half := len(wire) / 2
	if _, err := pub.nc.Write(wire[:half]); err != nil {
		t.Fatal(err)
	}
	for rest := wire[half:]; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%7919)
		if _, err := pub.nc.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	for i, w := range want {
		r := sub.next()
		if r.f.op() != "msg" {
			t.Fatalf("message %d: %s", i, r.raw)
		}
		got, _ := json.Marshal(r.f["data"])
		if string(got) != w {
			t.Fatalf("message %d: data %.40s…, want %.40s…", i, got, w)
		}
	}
	// quiet, then one more frame
	pub.send(0x1, []byte(`{"op":"pub","topic":"ahead","data":"last","id":9}`))
	if _, p, err := pub.read(); err != nil || !strings.Contains(string(p), `"ack"`) {
		t.Fatalf("ack of the last publish: %s %v", p, err)
	}
	if r := sub.next(); r.f["data"] != "last" {
		t.Fatalf("after the burst: %s", r.raw)
	}
}

// A stuck subscriber that exhausts a publish's stall must not cost a
// draining subscriber later in the same publish its backpressure: whatever
// the order of the two, the draining one loses nothing.
func TestRegressionExpiredClockStillDrains(t *testing.T) {
	for _, stuckFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("stuckFirst=%v", stuckFirst), func(t *testing.T) {
			b, _ := startBroker(t, broker.Options{QueueBytes: 4096, DrainTimeout: time.Minute})
			release := make(chan struct{})
			defer close(release)
			sub := func(h broker.Handler) *broker.Subscription {
				s, err := b.Subscribe("t", h)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			stuck := func(*broker.Message) error { <-release; return nil }
			// takes a message every 2 ms: slower than the publishers, never stuck
			slow := func(*broker.Message) error { time.Sleep(2 * time.Millisecond); return nil }
			var steady *broker.Subscription
			if stuckFirst {
				sub(stuck)
				steady = sub(slow)
			} else {
				steady = sub(slow)
				sub(stuck)
			}
			data, _ := json.Marshal(strings.Repeat("d", 200))
			var wg sync.WaitGroup
			var published atomic.Int64
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 100 {
						if b.Publish(context.Background(), broker.Message{Topic: "t", Data: data}) == nil {
							published.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if d := steady.Dropped(); d != 0 {
				t.Fatalf("the draining subscriber lost %d of %d", d, published.Load())
			}
		})
	}
}
