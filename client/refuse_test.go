package client_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// A publish over the broker's frame limit (and under the client's) makes
// the broker close the connection with 1009. The client fails that
// publish instead of keeping it at the head of its buffer, where it would
// be sent, and refused, again after every reconnect; the publish queued
// behind it goes through on the next connection.
func TestPublishOverBrokerFrameLimitFails(t *testing.T) {
	tb := newTestBroker(t, broker.Options{MaxFrameBytes: 64 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var disconnects atomic.Int32
	c := connect(t, tb.url(), client.WithPublishBuffer(100, 1<<20), client.OnStatus(func(s client.Status, err error) {
		if s == client.Disconnected {
			disconnects.Add(1)
		}
	}))
	big, err := c.PublishAsync(ctx, "big", strings.Repeat("x", 100<<10))
	if err != nil {
		t.Fatal(err)
	}
	small, err := c.PublishAsync(ctx, "small", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Wait(ctx); err == nil || !strings.Contains(err.Error(), "1009") {
		t.Fatalf("publish over the broker's frame limit: %v, want the broker's 1009", err)
	}
	if err := small.Wait(ctx); err != nil {
		t.Fatalf("the publish behind the refused one: %v", err)
	}
	eventually(t, "the disconnect reported", func() bool { return disconnects.Load() > 0 })
	if n := disconnects.Load(); n != 1 {
		t.Fatalf("%d disconnects, want the one the refused publish caused", n)
	}
	if n, _ := c.Buffered(); n != 0 {
		t.Fatalf("%d publishes still buffered", n)
	}
}

// Data that would make the frame invalid UTF-8 is refused by the publish
// call: it is never buffered nor sent, so the broker never closes the
// connection over it (1007), and the connection carries on.
func TestInvalidUTF8DataRefused(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var disconnects atomic.Int32
	c := connect(t, tb.url(), client.OnStatus(func(s client.Status, err error) {
		if s == client.Disconnected {
			disconnects.Add(1)
		}
	}))
	err := c.PublishNoAck(ctx, "u", json.RawMessage("\"\xff\""))
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("publish of invalid UTF-8: %v, want it refused", err)
	}
	if n, _ := c.Buffered(); n != 0 {
		t.Fatalf("the refused publish is buffered (%d)", n)
	}
	// the broker acknowledges the next publish on the same, first,
	// connection: nothing invalid reached it
	if err := c.Publish(ctx, "u", "valid"); err != nil {
		t.Fatal(err)
	}
	if st := tb.broker().Stats(); st.ConnectionsTotal != 1 || disconnects.Load() != 0 {
		t.Fatalf("%d connections accepted, %d disconnects, want 1 and 0", st.ConnectionsTotal, disconnects.Load())
	}
}
