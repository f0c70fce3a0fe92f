package natscluster_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/ferry-io/ferry/natscluster"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// deniedUser may subscribe to anything but ferry's secret/# topics.
func deniedUser() []*server.User {
	return []*server.User{{Username: "ferry", Password: "pw", Permissions: &server.Permissions{
		Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"ferry.secret", "ferry.secret.>"}},
	}}}
}

func ignore(*broker.Message) error { return nil }

// TestSubscriptionRefused: NATS refuses the subscription of a filter
// (permissions): the subscription is refused with the reason, rather than
// made and left without the other nodes' messages; the refusal is counted,
// nothing stays missing, and other filters are not affected.
func TestSubscriptionRefused(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{Users: deniedUser()})
	n := startNode(t, "nats://ferry:pw@"+s.Addr().String())
	open, err := n.b.Subscribe("open/x", ignore)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Unsubscribe()
	for _, tc := range []struct {
		filter string
		opts   []broker.SubOption
	}{
		{"secret/#", nil}, // two subjects, both refused
		{"secret", nil},   // the subject of secret/# without '>'
		{"secret/jobs", []broker.SubOption{broker.WithGroup("w")}},
	} {
		_, err := n.b.Subscribe(tc.filter, ignore, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), "NATS refused") {
			t.Fatalf("Subscribe(%q): %v, want the refusal", tc.filter, err)
		}
	}
	eventually(t, "nothing missing once the refused interest was taken back", func() bool {
		st := n.b.Stats().Cluster
		return st.Missing == 0 && st.SubscribeErrors > 0
	})
	if st := n.b.Stats(); !st.Cluster.Connected || st.Subscriptions != 1 {
		t.Fatalf("stats %+v %+v, want the open subscription only", st, st.Cluster)
	}
	// the open filter still gets the cluster's traffic
	got := make(chan struct{}, 1)
	recv, err := n.b.Subscribe("open/y", func(*broker.Message) error { got <- struct{}{}; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Unsubscribe()
	other := startNode(t, "nats://ferry:pw@"+s.Addr().String())
	eventually(t, "a message from another node", func() bool {
		_ = other.b.Publish(context.Background(), broker.Message{Topic: "open/y", Data: []byte(`1`)})
		select {
		case <-got:
			return true
		default:
			return false
		}
	})
}

// TestSubscribeFailsOnClosedConnection: with the application's connection
// closed, a new filter's subscription fails with the reason, and nothing
// is left behind.
func TestSubscribeFailsOnClosedConnection(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cl, err := natscluster.New(natscluster.Options{Conn: nc, Logger: log, SnapshotTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.New(broker.Options{Cluster: cl, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown(context.Background())
	nc.Close()
	if _, err := b.Subscribe("x/y", ignore); err == nil || !strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("Subscribe on a closed connection: %v", err)
	}
	eventually(t, "nothing missing", func() bool {
		st := b.Stats()
		return st.Cluster.Missing == 0 && st.Cluster.SubscribeErrors == 1 && st.Subscriptions == 0
	})
}
