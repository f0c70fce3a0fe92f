package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/lxzan/gws"
)

const floodPayload = 4096

// flood publishes in-process until cond holds, checking after each publish
// that no queue grew past its bound. It returns how many it published.
func flood(t *testing.T, b *broker.Broker, queueBytes int, cond func(broker.Stats) bool) int {
	t.Helper()
	data, _ := json.Marshal(strings.Repeat("z", floodPayload))
	maxFrame := len(data) + 64
	for n := 1; n <= 100000; n++ {
		if err := b.Publish(context.Background(), broker.Message{Topic: "flood", Data: data}); err != nil {
			t.Fatal(err)
		}
		st := b.Stats()
		if st.MaxQueuedBytes > int64(queueBytes+maxFrame) {
			t.Fatalf("a connection queued %d bytes, bound is %d (+ one frame)", st.MaxQueuedBytes, queueBytes)
		}
		if cond(st) {
			return n
		}
	}
	t.Fatal("condition not reached after 100000 publishes")
	return 0
}

func TestSlowConsumerDisconnect(t *testing.T) {
	const queue = 16 << 10
	// the stall lets the healthy subscriber keep up with the in-process flood
	b, url := startBroker(t, broker.Options{QueueBytes: queue, MaxStall: time.Second})
	slow := dialRaw(t, url, "")
	slow.send(0x1, []byte(`{"op":"sub","topic":"flood","id":1}`))
	if _, p, err := slow.read(); err != nil || !strings.Contains(string(p), `"ack"`) {
		t.Fatalf("sub: %s %v", p, err)
	}
	// a healthy subscriber on the same topic keeps receiving throughout
	fast := dial(t, url)
	fast.mustAck(map[string]any{"op": "sub", "topic": "flood"})

	n := flood(t, b, queue, func(s broker.Stats) bool { return s.SlowConsumers > 0 })
	for i := 0; i < n; i++ {
		fast.expect("msg")
	}
	// the slow client now reads: messages, then err slow_consumer and
	// close 4008 "slow consumer"
	var last, prev []byte
	var lastOp byte
	for {
		op, p, err := slow.read()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				break
			}
			t.Fatalf("read: %v", err)
		}
		prev = last
		lastOp, last = op, p
		if op == 0x8 {
			break
		}
	}
	if lastOp != 0x8 || len(last) < 2 || int(last[0])<<8|int(last[1]) != 4008 || string(last[2:]) != "slow consumer" {
		t.Fatalf("last frame opcode %x %q, want close 4008 \"slow consumer\"", lastOp, last)
	}
	var errF map[string]any
	if err := json.Unmarshal(prev, &errF); err != nil || errF["op"] != "err" || errF["code"] != "slow_consumer" {
		t.Fatalf("frame before the close: %s, want err slow_consumer", prev)
	}
	eventually(t, "slow connection released", func() bool { return b.Stats().Connections == 1 })
	if st := b.Stats(); st.SlowConsumers != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	fast.alive()
}

func TestSlowConsumerDrop(t *testing.T) {
	const queue = 16 << 10
	b, url := startBroker(t, broker.Options{QueueBytes: queue, MaxStall: -1, SlowConsumer: broker.Drop})
	slow := dialRaw(t, url, "")
	slow.send(0x1, []byte(`{"op":"sub","topic":"flood","id":1}`))
	if _, p, err := slow.read(); err != nil || !strings.Contains(string(p), `"ack"`) {
		t.Fatalf("sub: %s %v", p, err)
	}
	n := flood(t, b, queue, func(s broker.Stats) bool { return s.Dropped >= 20 })
	dropped := b.Stats().Dropped
	// after the flood, one more message once there is room
	received, reported := 0, uint64(0)
	sentLast := false
	for {
		op, p, err := slow.read()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if op != 0x1 {
			t.Fatalf("opcode %x", op)
		}
		var f map[string]any
		if err := json.Unmarshal(p, &f); err != nil {
			t.Fatal(err)
		}
		switch f["op"] {
		case "msg":
			if f["topic"] == "last" {
				goto done
			}
			received++
		case "err":
			if f["code"] != "overflow" || !strings.Contains(f["reason"].(string), "dropped") {
				t.Fatalf("err %v", f)
			}
			reported += uint64(f["dropped"].(float64))
		}
		if received+int(reported) == n && !sentLast {
			sentLast = true
			slow.send(0x1, []byte(`{"op":"sub","topic":"last","id":2}`))
		}
		if f["op"] == "ack" {
			if err := b.Publish(context.Background(), broker.Message{Topic: "last", Data: []byte(`1`)}); err != nil {
				t.Fatal(err)
			}
		}
	}
done:
	if reported != dropped || received+int(reported) != n {
		t.Fatalf("published %d: received %d, overflow reported %d, stats dropped %d", n, received, reported, dropped)
	}
	if st := b.Stats(); st.SlowConsumers != 0 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBriefStallAbsorbsBurst(t *testing.T) {
	// with a generous stall, a subscriber that reads gets every message of
	// a burst far larger than its queue, and nothing is dropped
	const queue = 4 << 10
	b, url := startBroker(t, broker.Options{QueueBytes: queue, MaxStall: 5 * time.Second})
	sub := dial(t, url, "ferry.v1.msgpack")
	sub.mustAck(map[string]any{"op": "sub", "topic": "burst"})
	const n = 2000
	data, _ := json.Marshal(strings.Repeat("b", 512))
	for i := 0; i < n; i++ {
		if err := b.Publish(context.Background(), broker.Message{Topic: "burst", Data: data}); err != nil {
			t.Fatal(err)
		}
		if q := b.Stats().MaxQueuedBytes; q > queue+1024 {
			t.Fatalf("queued %d bytes over the bound %d", q, queue)
		}
	}
	for i := 0; i < n; i++ {
		sub.expect("msg")
	}
	if st := b.Stats(); st.Dropped != 0 || st.SlowConsumers != 0 || st.Delivered != n {
		t.Fatalf("stats %+v", st)
	}
}

func TestIdleTimeout(t *testing.T) {
	_, url := startBroker(t, broker.Options{PingInterval: 20 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	deaf := dialWith(t, url, dialOpts{noPong: true})
	var pings atomic.Int32
	live := dialWith(t, url, dialOpts{onPing: func() { pings.Add(1) }})
	if ci := deaf.waitClosed(); ci.code != 4000 || ci.reason != "idle timeout" {
		t.Fatalf("closed with %d %q, want 4000 idle timeout", ci.code, ci.reason)
	}
	eventually(t, "pings to the live client", func() bool { return pings.Load() >= 3 })
	live.alive()
}

func TestShutdownClosesClients(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	c := dial(t, url, "ferry.v1.msgpack")
	c.mustAck(map[string]any{"op": "sub", "topic": "bye"})
	if err := b.Publish(context.Background(), broker.Message{Topic: "bye", Data: []byte(`"last words"`)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if f := c.expect("msg"); f["data"] != "last words" {
		t.Fatalf("got %v", f)
	}
	if ci := c.waitClosed(); ci.code != 1001 {
		t.Fatalf("closed with %d %q, want 1001", ci.code, ci.reason)
	}
	if _, resp, err := tryDial(t, url, dialOpts{}); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("dial after shutdown: %v %v", resp, err)
	}
	if err := b.Publish(ctx, broker.Message{Topic: "x", Data: []byte("1")}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after shutdown: %v", err)
	}
}

func TestPeerCloseFreesResources(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	for i := 0; i < 20; i++ {
		c := dial(t, url)
		c.mustAck(map[string]any{"op": "sub", "topic": "a/+"})
		if i%2 == 0 {
			_ = c.conn.WriteClose(1000, nil)
		} else {
			_ = c.conn.NetConn().Close()
		}
	}
	eventually(t, "connections released", func() bool {
		st := b.Stats()
		return st.Connections == 0 && st.Subscriptions == 0
	})
}

var _ gws.Event = (*client)(nil)

func TestStuckHandlerDoesNotThrottlePublishers(t *testing.T) {
	b, url := startBroker(t, broker.Options{QueueBytes: 4096, MaxStall: 200 * time.Millisecond})
	release, started := make(chan struct{}), make(chan struct{}, 1)
	sub, err := b.Subscribe("t", func(*broker.Message) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	pub := dial(t, url)
	pub.send(map[string]any{"op": "pub", "topic": "t", "data": 0})
	<-started // the handler is stuck on the first message
	const n = 300
	for i := 0; i < n; i++ {
		pub.send(map[string]any{"op": "pub", "topic": "t", "data": strings.Repeat("x", 100)})
	}
	pub.alive() // every publish was handled
	st := b.Stats()
	// only the first overflow stalls; after that the stuck queue is skipped
	if st.Stalls != 1 || sub.Dropped() == 0 || st.Dropped != sub.Dropped() {
		t.Fatalf("stalls %d, dropped %d (subscription %d)", st.Stalls, st.Dropped, sub.Dropped())
	}
}

func TestInProcessQueueCountsTopics(t *testing.T) {
	// tiny payloads on long topics still fill the bound
	b, _ := startBroker(t, broker.Options{QueueBytes: 64 << 10, MaxStall: -1})
	release := make(chan struct{})
	sub, err := b.Subscribe("#", func(*broker.Message) error { <-release; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer close(release)
	topic := strings.Repeat("t", 200)
	for i := 0; i < 1000; i++ {
		if err := b.Publish(context.Background(), broker.Message{Topic: topic, Data: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	// 64 KiB / (1 + 200 + overhead) is about 250 queued messages
	if d := sub.Dropped(); d < 500 {
		t.Fatalf("dropped %d of 1000: queue bound ignores topics and overhead", d)
	}
}

func TestConversionOverFrameLimit(t *testing.T) {
	// NUL bytes grow sixfold as JSON escapes: such a message cannot reach a
	// JSON subscriber within the frame limit; it is told, others get it
	b, url := startBroker(t, broker.Options{MaxFrameBytes: 64 << 10})
	js := dial(t, url)
	mpc := dial(t, url, "ferry.v1.msgpack")
	js.mustAck(map[string]any{"op": "sub", "topic": "nul"})
	mpc.mustAck(map[string]any{"op": "sub", "topic": "nul"})
	mpc.mustAck(map[string]any{"op": "pub", "topic": "nul", "data": strings.Repeat("\x00", 30000)})
	if f := mpc.expect("msg"); len(f["data"].(string)) != 30000 {
		t.Fatalf("msgpack subscriber got %d bytes", len(f["data"].(string)))
	}
	f := js.expectErr("too_large")
	if !strings.Contains(f["reason"].(string), `topic "nul"`) {
		t.Fatalf("reason %q", f["reason"])
	}
	if st := b.Stats(); st.Dropped != 1 {
		t.Fatalf("dropped %d", st.Dropped)
	}
	if err := b.Publish(context.Background(), broker.Message{Topic: "nul", Data: []byte(`"` + strings.Repeat("y", 70000) + `"`)}); !errors.Is(err, broker.ErrTooLarge) {
		t.Fatalf("in-process publish over the limit: %v", err)
	}
}

func TestCloseFramesAfterQuietPeriod(t *testing.T) {
	// writes after a long quiet period (longer than WriteTimeout) still work:
	// the write deadline is set for each write, not left over
	_, url := startBroker(t, broker.Options{WriteTimeout: 100 * time.Millisecond})
	for _, tc := range []struct {
		name  string
		frame []byte
		code  int
	}{
		{"invalid utf-8", []byte("\xff\xfe"), 1007},
		{"client close", nil, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, url, "")
			r.send(0x1, []byte(`{"op":"ping","id":1}`))
			if _, p, err := r.read(); err != nil || !strings.Contains(string(p), "pong") {
				t.Fatalf("ping: %s %v", p, err)
			}
			time.Sleep(300 * time.Millisecond) // quiet for three write timeouts
			if tc.frame != nil {
				r.send(0x1, tc.frame)
			} else {
				r.send(0x8, []byte{0x03, 0xe8})
			}
			op, p, err := r.read()
			if err != nil || op != 0x8 || len(p) < 2 || int(p[0])<<8|int(p[1]) != tc.code {
				t.Fatalf("got opcode %x %q %v, want close %d", op, p, err, tc.code)
			}
		})
	}
}

func TestShutdownIgnoresChattyClient(t *testing.T) {
	// a client that ignores the close frame and keeps sending cannot hold
	// the connection (or Shutdown) open
	b, url := startBroker(t, broker.Options{})
	r := dialRaw(t, url, "")
	stop := make(chan struct{})
	chatDone := make(chan struct{})
	go func() {
		defer close(chatDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				hdr := []byte{0x89, 0x80, 0, 0, 0, 0} // masked empty ping
				if _, err := r.nc.Write(hdr); err != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-chatDone }()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
