package client_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

func TestRegressionResumeDuplicates(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	p := newProxy(t, tb.addr)
	var errs atomic.Int32
	c := connect(t, p.url(), client.WithReconnect(10*time.Millisecond, 20*time.Millisecond, 2), client.OnError(func(error) { errs.Add(1) }))
	var mu sync.Mutex
	seen := map[uint64]int{}
	if _, err := c.Subscribe(ctx, "r", func(m *client.Message) error {
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		seen[m.Mid]++
		mu.Unlock()
		return nil
	}, client.AckMode(8)); err != nil {
		t.Fatal(err)
	}
	pub := connect(t, tb.url())
	for i := 0; i < 8; i++ {
		_ = pub.Publish(ctx, "r", i)
	}
	time.Sleep(40 * time.Millisecond)
	p.cut()
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	t.Logf("distinct mids %d, processed twice %d, OnError %d", len(seen), dups, errs.Load())
	mu.Unlock()
}
