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
// (permissions). The node's cluster status counts the refusals and the
// filter as missing until its subscribers leave; other filters are not.
func TestSubscriptionRefused(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{Users: deniedUser()})
	n := startNode(t, "nats://ferry:pw@"+s.Addr().String())
	open, err := n.b.Subscribe("open/x", ignore)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Unsubscribe()
	secret, err := n.b.Subscribe("secret/#", ignore) // two subjects, both refused
	if err != nil {
		t.Fatal(err)
	}
	overlap, err := n.b.Subscribe("secret", ignore) // the subject of secret/# without '>'
	if err != nil {
		t.Fatal(err)
	}
	group, err := n.b.Subscribe("secret/jobs", ignore, broker.WithGroup("w"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the refusals counted", func() bool {
		st := n.b.Stats().Cluster
		return st.SubscribeErrors == 4 && st.Missing == 3
	})
	secret.Unsubscribe()
	overlap.Unsubscribe()
	group.Unsubscribe()
	eventually(t, "nothing missing once the subscribers left", func() bool { return n.b.Stats().Cluster.Missing == 0 })
	if st := n.b.Stats().Cluster; st.SubscribeErrors != 4 || !st.Connected {
		t.Fatalf("cluster status %+v", st)
	}
}

// TestSubscribeFailsOnClosedConnection: with the application's connection
// closed, a new filter's subscription fails, and the status says so.
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
	sub, err := b.Subscribe("x/y", ignore)
	if err != nil {
		t.Fatal(err)
	}
	if st := b.Stats().Cluster; st.SubscribeErrors != 1 || st.Missing != 1 {
		t.Fatalf("cluster status %+v, want 1 error and 1 missing", st)
	}
	sub.Unsubscribe()
	if st := b.Stats().Cluster; st.Missing != 0 {
		t.Fatalf("cluster status %+v after the subscriber left", st)
	}
}
