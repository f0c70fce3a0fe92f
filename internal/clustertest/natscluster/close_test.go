package natscluster_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/ferry-io/ferry/natscluster"
	"github.com/nats-io/nats.go"
)

// TestCloseTwice: Close may be called again, also after the broker's
// Shutdown closed the cluster; after it, interest subscribes nothing.
func TestCloseTwice(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	t.Run("own connection", func(t *testing.T) {
		n := startNode(t, natsURL(s))
		n.stop()
		for range 2 {
			if err := n.c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if n.c.Connected() {
			t.Fatal("still connected after Close")
		}
	})
	t.Run("application's connection", func(t *testing.T) {
		nc, err := nats.Connect(natsURL(s))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		cl, err := natscluster.New(natscluster.Options{Conn: nc, Logger: log, SnapshotTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		b, err := broker.New(broker.Options{Cluster: cl, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe("a/#", func(*broker.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if nc.NumSubscriptions() <= 2 { // the two system subscriptions, and a/#
			t.Fatalf("%d NATS subscriptions with a subscriber", nc.NumSubscriptions())
		}
		if err := b.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cl.Close(); err != nil {
			t.Fatal(err)
		}
		cl.Interest("b", true)
		cl.Group("c", "g", true)
		if n := nc.NumSubscriptions(); n != 0 {
			t.Fatalf("%d NATS subscriptions after Close", n)
		}
		if !nc.IsConnected() {
			t.Fatal("Close closed the application's connection")
		}
	})
}
