package client_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

func TestRegressionInvalidUTF8Raw(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var disc atomic.Int32
	c := connect(t, tb.url(), client.OnStatus(func(s client.Status, err error) {
		if s == client.Disconnected {
			disc.Add(1)
		}
	}))
	err := c.PublishNoAck(ctx, "u", json.RawMessage("\"\xff\""))
	time.Sleep(2 * time.Second)
	n, _ := c.Buffered()
	t.Logf("publish err=%v; disconnects in 2s=%d; buffered=%d", err, disc.Load(), n)
}
