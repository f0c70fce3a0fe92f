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

// Unsubscribe while disconnected: the unsubscribe is kept and sent with
// the reconnect, so the session's acknowledged subscription does not
// survive on the broker (a ghost that takes messages nobody handles).
func TestUnsubscribeWhileDisconnectedReachesBroker(t *testing.T) {
	tb := newTestBroker(t, broker.Options{AckWait: 200 * time.Millisecond})
	ctx := context.Background()
	p := newProxy(t, tb.addr)
	var connects atomic.Int32
	c := connect(t, p.url(), client.WithReconnect(300*time.Millisecond, 300*time.Millisecond, 1),
		client.OnStatus(func(s client.Status, _ error) {
			if s == client.Connected {
				connects.Add(1)
			}
		}))
	var got atomic.Int32
	s, err := c.Subscribe(ctx, "g", func(*client.Message) error { got.Add(1); return nil }, client.AckMode(4))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "connected reported", func() bool { return connects.Load() == 1 })
	p.cut()
	eventually(t, "down", func() bool { return c.Status() != client.Connected })
	if n := tb.broker().Stats().Subscriptions; n != 1 {
		t.Fatalf("the broker holds %d subscriptions for the disconnected session, want 1", n)
	}
	if err := s.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "back", func() bool { return connects.Load() > 1 && c.Status() == client.Connected })
	eventually(t, "the subscription gone from the broker", func() bool { return tb.broker().Stats().Subscriptions == 0 })
	pub := connect(t, tb.url())
	for i := 0; i < 10; i++ {
		if err := pub.Publish(ctx, "g", i); err != nil { // acknowledged once routed
			t.Fatal(err)
		}
	}
	if st := tb.broker().Stats(); st.AckInflight+st.AckPending != 0 || st.Redelivered != 0 || got.Load() != 0 {
		t.Fatalf("after Unsubscribe while down: inflight %d, pending %d, redelivered %d, handled %d; want none",
			st.AckInflight, st.AckPending, st.Redelivered, got.Load())
	}
}

// Two acknowledged subscriptions of one client match one delivery, which
// they share (one mid). It is acknowledged only when both handlers are
// done and neither failed: the one that succeeds does not acknowledge it
// for the one that fails, which gets it again after AckWait.
func TestOverlappingAckSubscriptionsAckJointly(t *testing.T) {
	tb := newTestBroker(t, broker.Options{AckWait: 200 * time.Millisecond})
	ctx := context.Background()
	c := connect(t, tb.url())
	var failing atomic.Int32
	succeeded := make(chan struct{})
	var once sync.Once
	if _, err := c.Subscribe(ctx, "o/#", func(*client.Message) error {
		failing.Add(1)
		<-succeeded
		// a gap, not a condition: the other handler's return (and an ack
		// it must not send alone) goes out before this one fails
		time.Sleep(50 * time.Millisecond)
		return errFail
	}, client.AckMode(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "o/+", func(*client.Message) error {
		once.Do(func() { close(succeeded) })
		return nil
	}, client.AckMode(4)); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "o/1", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the failed delivery delivered again", func() bool { return failing.Load() >= 2 })
	if r := tb.broker().Stats().Redelivered; r == 0 {
		t.Fatalf("the handler ran %d times without a redelivery", failing.Load())
	}
}

type failErr struct{}

func (failErr) Error() string { return "fail" }

var errFail = failErr{}

// A resumed session gets the messages it had not acknowledged again
// (redelivered); those the client still holds, queued or in the handler,
// are skipped rather than handled twice.
func TestResumeSkipsRedeliveriesStillHeld(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	p := newProxy(t, tb.addr)
	var errs, connects atomic.Int32
	c := connect(t, p.url(), client.WithReconnect(10*time.Millisecond, 20*time.Millisecond, 2),
		client.OnError(func(error) { errs.Add(1) }),
		client.OnStatus(func(s client.Status, _ error) {
			if s == client.Connected {
				connects.Add(1)
			}
		}))
	gate := make(chan struct{})
	var mu sync.Mutex
	seen := map[uint64]int{}
	sub, err := c.Subscribe(ctx, "r", func(m *client.Message) error {
		<-gate
		mu.Lock()
		seen[m.Mid]++
		mu.Unlock()
		return nil
	}, client.AckMode(8))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8 // the window: all of them reach the client at once
	pub := connect(t, tb.url())
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "r", i); err != nil {
			t.Fatal(err)
		}
	}
	// one message in the handler, held at the gate, the others queued
	eventually(t, "the window at the client", func() bool { m, _ := sub.Pending(); return m == n-1 })
	eventually(t, "connected reported", func() bool { return connects.Load() == 1 })
	p.cut()
	// Connected comes after the resubscribe's reply, which the broker sends
	// after the redeliveries of the resumed session: they have been
	// received by then
	eventually(t, "resumed", func() bool { return connects.Load() > 1 && c.Status() == client.Connected })
	if r := tb.broker().Stats().Redelivered; r < n {
		t.Fatalf("%d redeliveries on resume, want %d", r, n)
	}
	close(gate)
	eventually(t, "every message handled and acknowledged", func() bool {
		mu.Lock()
		handled := len(seen)
		mu.Unlock()
		st := tb.broker().Stats()
		return handled == n && st.AckInflight == 0 && st.AckPending == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for mid, k := range seen {
		if k != 1 {
			t.Errorf("mid %d handled %d times", mid, k)
		}
	}
	if errs.Load() != 0 {
		t.Errorf("OnError called %d times", errs.Load())
	}
}
