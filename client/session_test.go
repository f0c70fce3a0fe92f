package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// Two clients sharing one session take it over from each other: each
// connection is accepted and then dropped (4009) as soon as the other
// reconnects. A connection that ends that soon counts as a failed attempt,
// so the backoff grows as for a broker that refuses connections and, with
// MaxReconnects, the client gives up instead of flapping for ever.
func TestSessionTakeoverFlapBacksOff(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	closed := make(chan error, 2) // one Closed per client
	opts := []client.Option{
		client.WithReconnect(5*time.Millisecond, 50*time.Millisecond, 2),
		client.WithMaxReconnects(3),
		client.OnStatus(func(s client.Status, err error) {
			if s == client.Closed {
				closed <- err
			}
		}),
	}
	c := connect(t, tb.url(), opts...)
	connect(t, tb.url(), append(opts, client.WithSession(c.Session()))...)
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "gave up") {
			t.Fatalf("closed with %v, want giving up after MaxReconnects", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("clients taking over each other's session never gave up: %d connections accepted",
			tb.broker().Stats().ConnectionsTotal)
	}
}

// A broker with sessions disabled ignores the session id every client
// presents by default.
func TestConnectWithSessionsDisabled(t *testing.T) {
	tb := newTestBroker(t, broker.Options{SessionTTL: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, tb.url())
	if err != nil {
		t.Fatalf("cannot connect to a broker with sessions disabled: %v", err)
	}
	c.Close()
}
