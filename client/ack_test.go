package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// Unsubscribe while disconnected: the session's ack subscription survives on the broker.
func TestRegressionGhostAckSubscription(t *testing.T) {
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
	before := connects.Load()
	p.cut()
	eventually(t, "down", func() bool { return c.Status() != client.Connected })
	if err := s.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "back", func() bool { return connects.Load() > before && c.Status() == client.Connected })
	pub := connect(t, tb.url())
	for i := 0; i < 10; i++ {
		if err := pub.Publish(ctx, "g", i); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	st := tb.broker().Stats()
	t.Logf("after Unsubscribe while down: broker subs=%d inflight=%d pending=%d redelivered=%d; handler got %d",
		st.Subscriptions, st.AckInflight, st.AckPending, st.Redelivered, got.Load())
	if st.AckInflight > 0 || st.Redelivered > 0 {
		t.Errorf("ghost ack subscription on the broker after Unsubscribe")
	}
}

// Two ack subscriptions matching one delivery share one mid: the fast one acks
// while the other's handler failed -> no redelivery for it.
func TestRegressionOverlappingAckSubsEarlyAck(t *testing.T) {
	tb := newTestBroker(t, broker.Options{AckWait: 200 * time.Millisecond})
	ctx := context.Background()
	c := connect(t, tb.url())
	var failing atomic.Int32
	if _, err := c.Subscribe(ctx, "o/#", func(*client.Message) error {
		failing.Add(1)
		time.Sleep(50 * time.Millisecond)
		return errFail
	}, client.AckMode(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "o/+", func(*client.Message) error { return nil }, client.AckMode(4)); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "o/1", 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	t.Logf("failing handler called %d times (expected redeliveries every 200ms)", failing.Load())
	if failing.Load() < 2 {
		t.Errorf("message acked by the other subscription before the failing handler finished; never redelivered")
	}
}

type failErr struct{}

func (failErr) Error() string { return "fail" }

var errFail = failErr{}

// Status after Close can end up not Closed.
func TestRegressionStatusAfterClose(t *testing.T) {
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
