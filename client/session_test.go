package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

func TestRegressionCloseLatency(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		s := time.Now()
		c, _ := client.Connect(ctx, tb.url())
		ct := time.Since(s)
		_, _ = c.Subscribe(ctx, "a", func(*client.Message) error { return nil })
		s = time.Now()
		_ = c.Close()
		t.Logf("connect %v close %v", ct, time.Since(s))
	}
}

// backoff never grows when each connection is accepted then dropped at once
func TestRegressionFlapBackoff(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	_ = context.Background()
	var attempts int
	_ = attempts
	c := connect(t, tb.url(), client.OnStatus(func(s client.Status, _ error) {
		if s == client.Reconnecting {
			attempts++
		}
	}))
	_ = c
	// second client with the same session takes the session over repeatedly
	c2 := connect(t, tb.url(), client.WithSession(c.Session()))
	_ = c2
	time.Sleep(3 * time.Second)
	st := tb.broker().Stats()
	t.Logf("two clients sharing a session: %d connections accepted in ~3s", st.ConnectionsTotal)
}
