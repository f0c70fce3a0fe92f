package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// A queue group is its name and its filter: two groups of one name on
// overlapping filters are two groups, and each delivery reaches the
// subscription of the group that chose it, acknowledged there.
func TestSameNamedGroupsOnOverlappingFilters(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, tb.url(), client.WithLogger(quietLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var plus, hash atomic.Int32
	if _, err := c.Subscribe(ctx, "jobs/+", func(*client.Message) error { plus.Add(1); return nil }, client.Group("w"), client.AckMode(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "jobs/#", func(*client.Message) error { hash.Add(1); return nil }, client.Group("w"), client.AckMode(8)); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		if err := c.Publish(ctx, "jobs/a", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "every message to each group", func() bool { return plus.Load() >= n && hash.Load() >= n })
	// every delivery was acknowledged by the subscription it was for:
	// nothing is left unacknowledged to be redelivered
	eventually(t, "no delivery left unacknowledged", func() bool {
		st := tb.broker().Stats()
		return st.AckInflight == 0 && st.AckPending == 0
	})
	if plus.Load() != n || hash.Load() != n {
		t.Fatalf("jobs/+ got %d, jobs/# got %d; want %d each", plus.Load(), hash.Load(), n)
	}
}
