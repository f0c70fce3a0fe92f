package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

func TestRegressionDrainAckSub(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var errs atomic.Int32
	var first atomic.Value
	c, err := client.Connect(ctx, tb.url(), client.OnError(func(err error) {
		if errs.Add(1) == 1 {
			first.Store(err.Error())
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	var handled atomic.Int32
	if _, err := c.Subscribe(ctx, "d", func(*client.Message) error { time.Sleep(20 * time.Millisecond); handled.Add(1); return nil }, client.AckMode(8)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, tb.url())
	for i := 0; i < 50; i++ {
		_ = pub.Publish(ctx, "d", i)
	}
	time.Sleep(50 * time.Millisecond)
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = c.Drain(dctx)
	st := tb.broker().Stats()
	t.Logf("Drain: err=%v handled=%d of 50, OnError calls=%d (first: %v), broker dropped=%d", err, handled.Load(), errs.Load(), first.Load(), st.Dropped)
}
