package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// Nacks from a client that does not read do not grow its outbound queue
// past the bound: a nack of a message whose copy is still queued queues no
// other copy.
func TestNackSpamStaysWithinQueueBound(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	r := dialRaw(t, url, "")
	r.send(0x1, []byte(`{"op":"sub","topic":"n","ack":true,"id":1}`))
	big := `"` + strings.Repeat("x", 100<<10) + `"`
	if err := b.Publish(context.Background(), broker.Message{Topic: "n", Data: []byte(big)}); err != nil {
		t.Fatal(err)
	}
	// mid 1 is outstanding; never read, just nack
	for i := 0; i < 3000; i++ {
		r.send(0x1, []byte(`{"op":"nack","mid":1}`))
	}
	// the broker handles a connection's frames in order: once it has
	// routed this publish it has handled every nack
	r.send(0x1, []byte(`{"op":"pub","topic":"marker","data":1}`))
	eventually(t, "the nacks handled", func() bool { return b.Stats().Published == 2 })
	st := b.Stats()
	if st.MaxQueuedBytes > 4*broker.DefaultQueueBytes {
		t.Fatalf("outbound queue %d bytes, %dx the bound (redelivered %d)", st.MaxQueuedBytes, st.MaxQueuedBytes/broker.DefaultQueueBytes, st.Redelivered)
	}
}

// An acknowledged subscription whose retained backlog is larger than
// QueueBytes is not a slow consumer: the backlog waits outside the queue
// bound, so a live publish finds room and the subscriber stays connected.
func TestRetainedBacklogKeepsAckSubscriber(t *testing.T) {
	b, url := startBroker(t, broker.Options{QueueBytes: 4096})
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := b.Publish(ctx, broker.Message{Topic: fmt.Sprintf("r/%03d", i), Data: []byte(`"` + strings.Repeat("v", 100) + `"`), Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	sub := dial(t, url)
	sub.mustAck(map[string]any{"op": "sub", "topic": "r/#", "ack": true, "inflight": 4})
	for i := 0; i < 4; i++ {
		sub.expect("msg")
	}
	// one live message: the subscriber has done nothing wrong. The policy
	// would apply within Publish, so its counters are final when it returns.
	if err := b.Publish(ctx, broker.Message{Topic: "r/live", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.SlowConsumers != 0 || st.Dropped != 0 {
		t.Fatalf("after one live message: %d slow consumers, %d dropped", st.SlowConsumers, st.Dropped)
	}
	sub.alive()
}

// An in-process acknowledged subscription with a full window and a full
// queue (AckQueue 1) counts each message it drops once.
func TestLocalAckDropsCountedOnce(t *testing.T) {
	b, _ := startBroker(t, broker.Options{AckQueue: 1, MaxStall: -1, AckStall: -1})
	block := make(chan struct{})
	s, err := b.Subscribe("d", func(*broker.Message) error { <-block; return nil }, broker.WithAck(1))
	if err != nil {
		t.Fatal(err)
	}
	defer close(block)
	for i := 0; i < 5; i++ {
		_ = b.Publish(context.Background(), broker.Message{Topic: "d", Data: []byte("1")})
	}
	// one in the window (the handler holds it), one queued, three dropped
	if st := b.Stats(); st.Dropped != 3 {
		t.Fatalf("Dropped=%d (subscription: %d), want 3", st.Dropped, s.Dropped())
	}
}

// A message that cannot be sent in the subscriber's codec (msgpack bin
// over JSON's frame limit once converted) is reported and leaves the
// window: the acknowledged subscription is not wedged on it, and the next
// message arrives.
func TestUnsendableMessageLeavesAckWindow(t *testing.T) {
	b, url := startBroker(t, broker.Options{MaxFrameBytes: 1024, AckWait: 50 * time.Millisecond})
	sub := dial(t, url) // JSON
	sub.mustAck(map[string]any{"op": "sub", "topic": "q", "ack": true, "inflight": 1})
	bin := append([]byte{0xc5, 0x03, 0x84}, make([]byte, 900)...) // msgpack bin16, 900 bytes
	if err := b.Publish(context.Background(), broker.Message{Topic: "q", Data: bin, Codec: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), broker.Message{Topic: "q", Data: []byte(`"next"`)}); err != nil {
		t.Fatal(err)
	}
	errs := 0
	for {
		r := sub.next()
		if r.f.op() == "err" {
			errs++
			continue
		}
		if r.f.op() != "msg" || r.f["data"] != "next" {
			t.Fatalf("got %s, want the message after the unsendable one", r.raw)
		}
		break
	}
	if errs == 0 {
		t.Fatal("the unsendable message was not reported")
	}
}
