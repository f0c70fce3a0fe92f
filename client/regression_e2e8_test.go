package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

func TestRegressionDrainCtxStuckHandler(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c, _ := client.Connect(ctx, tb.url())
	_, _ = c.Subscribe(ctx, "x", func(*client.Message) error { time.Sleep(3 * time.Second); return nil })
	_ = c.Publish(ctx, "x", 1)
	time.Sleep(50 * time.Millisecond)
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	s := time.Now()
	err := c.Drain(dctx)
	t.Logf("Drain(200ms ctx) returned after %v: %v", time.Since(s).Round(time.Millisecond), err)
}
