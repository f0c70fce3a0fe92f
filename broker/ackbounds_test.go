package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// R1: nack spam from a client that does not read grows the outbound queue
// without bound (each nack pushForce's a fresh copy of the message).
func TestRegressionNackSpamUnbounded(t *testing.T) {
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
	time.Sleep(300 * time.Millisecond)
	st := b.Stats()
	t.Logf("QueuedBytes=%d MaxQueuedBytes=%d (QueueBytes bound %d) Redelivered=%d", st.QueuedBytes, st.MaxQueuedBytes, broker.DefaultQueueBytes, st.Redelivered)
	if st.MaxQueuedBytes > 4*broker.DefaultQueueBytes {
		t.Errorf("outbound queue %d bytes, %dx the bound", st.MaxQueuedBytes, st.MaxQueuedBytes/broker.DefaultQueueBytes)
	}
}

// R3: an ack subscription whose retained backlog exceeds QueueBytes is
// treated as a slow consumer by the first live publish.
func TestRegressionRetainedBacklogDisconnectsAckSub(t *testing.T) {
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
	st := b.Stats()
	t.Logf("after sub: pending=%d inflight=%d", st.AckPending, st.AckInflight)
	// one live message: the subscriber has done nothing wrong
	if err := b.Publish(ctx, broker.Message{Topic: "r/live", Data: []byte(`1`)}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.closed:
		sub.closeMu.Lock()
		t.Errorf("ack subscriber closed with %d %q after one live message (dropped=%d)", sub.close.code, sub.close.reason, b.Stats().Dropped)
		sub.closeMu.Unlock()
	case <-time.After(300 * time.Millisecond):
	}
}

var _ = json.Marshal
