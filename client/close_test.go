package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// Close while the reader is dispatching: enqueue vs stop race crashes the process.
func TestRegressionCloseWhileDispatching(t *testing.T) {
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
		time.Sleep(time.Millisecond)
		_ = c.Close()
		n++
	}
	t.Logf("%d rounds without a crash", n)
}
