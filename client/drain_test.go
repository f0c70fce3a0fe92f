package client_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// Drain with an acknowledged subscription in mid-flow: the handler
// finishes what the client holds (and acknowledges it), and what it has
// not received stays with the broker's session, unacknowledged, for the
// next connection of the session. Nothing is lost, dropped or reported.
func TestDrainLeavesAckSubscriptionWithBroker(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var errs atomic.Int32
	var firstErr atomic.Value
	c, err := client.Connect(ctx, tb.url(), client.OnError(func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	if _, err := c.Subscribe(ctx, "d", func(*client.Message) error {
		time.Sleep(20 * time.Millisecond) // a slow handler: Drain comes with messages still to take
		handled.Add(1)
		return nil
	}, client.AckMode(8)); err != nil {
		t.Fatal(err)
	}
	const n = 50
	pub := connect(t, tb.url())
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "d", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the handler at work", func() bool { return handled.Load() > 0 })
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	h := int(handled.Load())
	if h >= n {
		t.Fatalf("the handler took all %d messages before Drain: nothing was left to the broker", n)
	}
	// the acks of the handled messages reach the broker before the close
	eventually(t, "the broker holding every message not handled", func() bool {
		st := tb.broker().Stats()
		return st.AckPending+st.AckInflight == n-h
	})
	if st := tb.broker().Stats(); st.Dropped != 0 || errs.Load() != 0 {
		t.Fatalf("broker dropped %d, OnError called %d times (first: %v)", st.Dropped, errs.Load(), firstErr.Load())
	}
}

// Drain's ctx bounds its wait for a handler that does not return.
func TestDrainCtxBoundsStuckHandler(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c := connect(t, tb.url())
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	if _, err := c.Subscribe(ctx, "x", func(*client.Message) error {
		close(started)
		<-release
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatal("the handler never started")
	}
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Drain(dctx) }()
	select {
	case err := <-errc:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Drain with a stuck handler: %v, want its ctx's deadline", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Drain waited for a stuck handler past its ctx")
	}
	if c.Status() != client.Closed {
		t.Fatalf("status after Drain: %v, want Closed", c.Status())
	}
}
