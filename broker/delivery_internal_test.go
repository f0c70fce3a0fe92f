package broker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil"
)

func quietBroker(t *testing.T, o Options) *Broker {
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An in-process acknowledged subscription whose handler is stuck is
// redelivered its window every AckWait; a redelivery of a message still in
// its queue queues no other copy, so the queue stays within the window.
func TestLocalRedeliveryDoesNotPileUp(t *testing.T) {
	b := quietBroker(t, Options{AckWait: 10 * time.Millisecond})
	defer b.Shutdown(context.Background())
	block := make(chan struct{})
	s, err := b.Subscribe("x", func(*Message) error { <-block; return nil }, WithAck(8))
	if err != nil {
		t.Fatal(err)
	}
	defer close(block)
	for i := 0; i < 8; i++ {
		_ = b.Publish(context.Background(), Message{Topic: "x", Data: []byte(`1`)})
	}
	const rounds = 20
	testutil.Eventually(t, 20*time.Second, time.Millisecond, "20 rounds of redelivery", func() bool {
		return b.Stats().Redelivered >= 8*rounds
	})
	s.mu.Lock()
	n, by := s.q.items.n, s.q.bytes
	s.mu.Unlock()
	if n > 16 {
		t.Fatalf("after %d redelivery rounds the queue holds %d copies (%d bytes) for a window of 8", rounds, n, by)
	}
}

// A session with plain "a/#" subscribes plain "a/+": a live message
// published between the subscribe and its activation does not go out
// through "a/#" before the retained message of "a/+" (retained before live
// on the new subscription's topics).
func TestRetainedBeforeLiveOnNewSubscription(t *testing.T) {
	b := quietBroker(t, Options{})
	defer b.Shutdown(context.Background())
	got := make(chan *Message, 10)
	ls := newSubscription(b, "", func(m *Message) error { got <- m; return nil })
	b.bgWG.Add(1)
	go b.loop("in-process subscription", ls.run)
	s1, _, r1, _ := ls.sess.subscribe(ls, "a/#", "", false, 0, 0)
	s1.activate(r1)
	_ = b.Publish(context.Background(), Message{Topic: "a/b", Data: []byte(`"old"`), Retain: true})
	<-got
	s2, _, r2, _ := ls.sess.subscribe(ls, "a/+", "", false, 0, 0)
	// live message between sub (and its ack) and activate
	_ = b.Publish(context.Background(), Message{Topic: "a/b", Data: []byte(`"new"`)})
	s2.activate(r2)
	m1, m2 := <-got, <-got
	t.Logf("order: %s(retained=%v) then %s(retained=%v)", m1.Data, m1.Retained, m2.Data, m2.Retained)
	if !m1.Retained {
		t.Errorf("live %s delivered before the new subscription's retained %s", m1.Data, m2.Data)
	}
	ls.Unsubscribe()
}

// BenchmarkSubscribeWithRetained: adding a subscription that matches none
// of 10,000 retained messages.
func BenchmarkSubscribeWithRetained(bm *testing.B) {
	b := quietBroker(&testing.T{}, Options{})
	defer b.Shutdown(context.Background())
	for i := 0; i < 10000; i++ {
		_ = b.Publish(context.Background(), Message{Topic: "dev/" + strconv.Itoa(i) + "/state", Data: []byte(`1`), Retain: true})
	}
	bm.ResetTimer()
	for i := 0; i < bm.N; i++ {
		s := &subscription{filter: "other/x"}
		b.index.addWithRetained(s, &b.retained)
		b.index.remove(s)
	}
}

// An acknowledged group member leaves while the other, plain, member's
// connection is closing (queue closed, not yet detached): the hand-over
// to it fails, and the messages are counted as dropped, not as
// redelivered into a closed queue.
func TestHandOverToClosingMemberCountsDropped(t *testing.T) {
	b := quietBroker(t, Options{})
	defer b.Shutdown(context.Background())
	p1, p2 := net.Pipe()
	go io.Copy(io.Discard, p2)
	c := &conn{}
	c.init(b, nil, &lockedConn{Conn: p1}, 0, "plain")
	b.attachSession(c, "", "", nil)
	if _, _, _, err := c.sess.subscribe(c, "w", "g", false, 0, 0); err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	a, err := b.Subscribe("w", func(*Message) error { <-block; return nil }, WithGroup("g"), WithAck(4))
	if err != nil {
		t.Fatal(err)
	}
	// plain member closing (e.g. slow consumer), read loop not yet ended
	c.closeWith(4008, "slow consumer", true)
	for i := 0; i < 4; i++ { // round-robin: plain refuses (closed), ack takes
		_ = b.Publish(context.Background(), Message{Topic: "w", Data: []byte(`1`)})
	}
	_, infl := a.sess.queuedMessages()
	before := b.Stats()
	a.Unsubscribe() // its 4 inflight are handed over to the closing plain member
	close(block)
	st := b.Stats()
	t.Logf("ack member inflight %d; hand-over: redelivered +%d dropped +%d", infl, st.Redelivered-before.Redelivered, st.Dropped-before.Dropped)
	if st.Dropped-before.Dropped < uint64(infl) {
		t.Errorf("%d handed-over messages vanished into a closed queue, counted as redelivered", uint64(infl)-(st.Dropped-before.Dropped))
	}
	c.cleanup()
}
