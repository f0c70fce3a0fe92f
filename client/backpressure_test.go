package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// A handler that falls behind holds its connection's reads instead of
// losing messages: the socket and the broker's queue fill and the broker
// holds the publisher (its Stalls count). Every message arrives, in order,
// none dropped, and the broker cuts nobody. Counts, not timings: the
// handler is stuck on its first message until the broker shows it holds
// the publisher (or everything was published), then slow.
func TestBackpressureInsteadOfLoss(t *testing.T) {
	tb := newTestBroker(t, broker.Options{QueueBytes: 16 << 10})
	sub := connect(t, tb.url(), client.WithPending(10, 1<<20), client.WithMaxHold(time.Minute))
	const n = 20000
	var got, published atomic.Int64
	errc := make(chan error, 1)
	pad := strings.Repeat("x", 1000)
	s, err := sub.Subscribe(context.Background(), "bp", func(m *client.Message) error {
		i := got.Add(1)
		if i == 1 {
			eventually(t, "the broker holding the publisher", func() bool {
				return tb.b.Stats().Stalls > 0 || published.Load() == n
			})
		}
		if want := fmt.Sprintf(`"%d %s"`, i-1, pad); string(m.Data) != want {
			select {
			case errc <- fmt.Errorf("message %d is %.20s, want %.20s", i, m.Data, want):
			default:
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, tb.url(), client.WithPublishBuffer(n, 64<<20))
	for i := range n {
		if err := pub.PublishNoAck(context.Background(), "bp", fmt.Sprintf("%d %s", i, pad)); err != nil {
			t.Fatal(err)
		}
		published.Add(1)
	}
	eventually(t, fmt.Sprintf("%d messages", n), func() bool { return got.Load() >= n })
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	st := tb.b.Stats()
	if got.Load() != n || s.Dropped() != 0 || st.SlowConsumers != 0 {
		t.Fatalf("%d messages, %d dropped, %d cut by the broker; want %d, 0, 0", got.Load(), s.Dropped(), st.SlowConsumers, n)
	}
	if st.Stalls == 0 {
		t.Fatal("the broker never held the publisher: the load did not fill the queues")
	}
}

// A handler that waits for a reply on its own connection (a Publish's
// ack) while its queue is full does not stall the connection for good:
// after MaxHold the subscription drops what does not fit, the reader
// reads the ack, and the handler goes on.
func TestMaxHoldUnblocksOwnRequests(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	c := connect(t, tb.url(), client.WithPending(2, 1<<20), client.WithMaxHold(200*time.Millisecond))
	var handled atomic.Int64
	first := make(chan struct{})
	s, err := c.Subscribe(context.Background(), "own", func(m *client.Message) error {
		if handled.Add(1) == 1 {
			<-first // the queue fills meanwhile
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			return c.Publish(ctx, "elsewhere", 1) // its ack is behind the held messages
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, tb.url())
	for i := range 20 {
		if err := pub.Publish(context.Background(), "own", i); err != nil {
			t.Fatal(err)
		}
	}
	close(first)
	eventually(t, "the handler done with what it got", func() bool {
		p, _ := s.Pending()
		return p == 0 && handled.Load() >= 2 && handled.Load()+int64(s.Dropped()) == 20
	})
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped: the hold did not run out")
	}
}

// With DropWhenFull the same stuck handler loses what does not fit, and
// says so: the control that shows the load does overflow the queue.
func TestDropWhenFull(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	dropped := make(chan struct{}, 1)
	sub := connect(t, tb.url(), client.WithPending(10, 1<<20), client.OnError(func(err error) {
		var sc *client.SlowConsumerError
		if errors.As(err, &sc) && sc.Dropped > 0 {
			select {
			case dropped <- struct{}{}:
			default:
			}
		}
	}))
	release := make(chan struct{})
	var got atomic.Int64
	s, err := sub.Subscribe(context.Background(), "d", func(*client.Message) error {
		got.Add(1)
		<-release
		return nil
	}, client.DropWhenFull())
	if err != nil {
		t.Fatal(err)
	}
	pub := connect(t, tb.url())
	for i := range 100 {
		if err := pub.Publish(context.Background(), "d", i); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-dropped:
	case <-time.After(waitTimeout):
		t.Fatal("no drop reported")
	}
	close(release)
	eventually(t, "the queue handled", func() bool { return got.Load()+int64(s.Dropped()) == 100 })
	if s.Dropped() == 0 {
		t.Fatalf("%d handled, none dropped", got.Load())
	}
}
