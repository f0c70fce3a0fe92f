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
)

// panicky is a node whose Deliver panics on one topic.
type panicky struct{ got chan string }

func (p *panicky) Deliver(m broker.ClusterMessage) {
	if m.Topic == "t/boom" {
		panic("boom")
	}
	p.got <- m.Topic
}
func (p *panicky) DeliverGroup(string, string, broker.ClusterMessage) {}
func (p *panicky) SetRetained(broker.ClusterMessage)                  {}
func (p *panicky) Retained() []broker.ClusterMessage                  { return nil }

// A panic while a message from NATS is handed to the node is recovered:
// the dispatch goes on with the next message, and the process lives.
func TestDispatchRecoversPanic(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	cl, err := natscluster.New(natscluster.Options{URLs: []string{natsURL(s)}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	n := &panicky{got: make(chan string, 16)}
	if err := cl.Start(n); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Interest("t/#", true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{"t/boom", "t/after"} {
		if err := cl.Publish(ctx, broker.ClusterMessage{Topic: topic, Data: []byte(`1`)}, true); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-n.got:
		if got != "t/after" {
			t.Fatalf("delivered %q", got)
		}
	case <-ctx.Done():
		t.Fatal("nothing delivered after the panic")
	}
}
