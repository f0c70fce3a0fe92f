package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// Close while the reader is dispatching to many subscriptions, with a
// publisher keeping them busy: stopping the subscriptions races with
// handing them messages, and must not send on a closed channel (a crash).
func TestCloseWhileDispatching(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	pub := connect(t, tb.url())
	stopPub := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopPub:
				return
			default:
			}
			_ = pub.PublishNoAck(ctx, "hot", 1)
		}
	}()
	defer close(stopPub)
	deadline := time.Now().Add(3 * time.Second)
	n := 0
	for time.Now().Before(deadline) {
		c, err := client.Connect(ctx, tb.url())
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 8; i++ {
			if _, err := c.Subscribe(ctx, "hot", func(*client.Message) error { return nil }); err != nil && i == 0 {
				t.Fatal(err)
			}
			_, _ = c.Subscribe(ctx, "h"+string(rune('a'+i))+"/#", func(*client.Message) error { return nil })
		}
		_, _ = c.Subscribe(ctx, "#", func(*client.Message) error { return nil })
		// a gap, not a condition: messages are being dispatched when Close
		// comes
		time.Sleep(time.Millisecond)
		_ = c.Close()
		n++
	}
	t.Logf("%d rounds without a crash", n)
}

func TestCloseFromHandler(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c, err := client.Connect(ctx, tb.url())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	_, err = c.Subscribe(ctx, "x", func(*client.Message) error { _ = c.Close(); close(done); return nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Publish(ctx, "x", 1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from a handler did not return")
	}
}

func TestCloseFromOnStatus(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var cl atomic.Pointer[client.Client]
	var once sync.Once
	done := make(chan struct{})
	c, err := client.Connect(ctx, tb.url(), client.WithReconnect(10*time.Millisecond, 20*time.Millisecond, 2),
		client.OnStatus(func(s client.Status, err error) {
			if c := cl.Load(); c != nil && s == client.Disconnected {
				once.Do(func() { _ = c.Close(); close(done) })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Store(c)
	tb.stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnStatus did not return")
	}
}

// Status is Closed once Close returns, also when Close races with the
// connection being lost and the client reconnecting.
func TestStatusClosedAfterClose(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	bad := 0
	for i := 0; i < 200; i++ {
		p := newProxy(t, tb.addr)
		c, err := client.Connect(ctx, p.url(), client.WithReconnect(time.Millisecond, time.Millisecond, 1))
		if err != nil {
			t.Fatal(err)
		}
		p.cut()
		// a gap of 0 to 950 µs: Close lands at every stage of the reconnect
		time.Sleep(time.Duration(i%20) * 50 * time.Microsecond)
		_ = c.Close()
		if c.Status() != client.Closed {
			bad++
			if bad == 1 {
				t.Logf("round %d: status after Close = %v", i, c.Status())
			}
		}
		p.close()
	}
	if bad > 0 {
		t.Errorf("%d of 200 rounds: Status() != Closed after Close returned", bad)
	}
}

// Close returns at once, with subscriptions in place, and also when the
// broker does not answer: it does not wait for the broker's close frame,
// nor spend the second it allows a stuck write.
func TestCloseReturnsPromptly(t *testing.T) {
	const limit = 500 * time.Millisecond
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	p := newProxy(t, tb.addr)
	for i := 0; i < 6; i++ {
		c := connect(t, p.url())
		if _, err := c.Subscribe(ctx, "a", func(*client.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
		silent := i == 5
		if silent {
			p.blackhole() // the broker's answers no longer arrive
		}
		start := time.Now()
		_ = c.Close()
		if el := time.Since(start); el > limit {
			t.Fatalf("Close took %v (broker silent: %v), want under %v", el, silent, limit)
		}
		if c.Status() != client.Closed {
			t.Fatalf("status after Close: %v", c.Status())
		}
	}
}
