package broker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// Publishers race with members leaving and joining an acknowledged queue
// group: every message reaches a member or is counted as dropped (a
// leaving member's unacknowledged messages go to the rest of the group).
func TestGroupChurnLosesNothing(t *testing.T) {
	b, _ := startBroker(t, broker.Options{AckWait: 20 * time.Millisecond})
	var mu sync.Mutex
	seen := map[int]int{}
	h := func(m *broker.Message) error {
		v, _ := strconv.Atoi(string(m.Data))
		mu.Lock()
		seen[v]++
		mu.Unlock()
		return nil
	}
	var subs []*broker.Subscription
	for i := 0; i < 4; i++ {
		s, err := b.Subscribe("j/+", h, broker.WithGroup("g"), broker.WithAck(4))
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	const P, N = 4, 3000
	var wg sync.WaitGroup
	for p := 0; p < P; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < N; i++ {
				_ = b.Publish(context.Background(), broker.Message{Topic: "j/x", Data: []byte(strconv.Itoa(p*N + i))})
			}
		}()
	}
	// churn: members leave and join
	stop := make(chan struct{})
	var cw sync.WaitGroup
	cw.Add(1)
	go func() {
		defer cw.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			subs[k%4].Unsubscribe()
			s, err := b.Subscribe("j/+", h, broker.WithGroup("g"), broker.WithAck(4))
			if err != nil {
				t.Error(err)
				return
			}
			subs[k%4] = s
		}
	}()
	wg.Wait()
	close(stop)
	cw.Wait()
	// handed-over and redelivered messages arrive after the publishers end
	eventually(t, "every message received or counted as dropped", func() bool {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		return uint64(got)+b.Stats().Dropped >= P*N
	})
}

// A session's connection is taken over again and again while messages
// flow to its acknowledged subscription, each new connection subscribing
// and acknowledging: every message is received or counted as dropped.
func TestSessionTakeoverChurnLosesNothing(t *testing.T) {
	b, url := startBroker(t, broker.Options{AckWait: 200 * time.Millisecond})
	surl := url + "?session=st"
	var mu sync.Mutex
	got := map[uint64]bool{}
	reader := func(c *client, stop <-chan struct{}) {
		for {
			select {
			case r := <-c.frames:
				if r.f.op() == "msg" {
					v, _ := r.f.num("data")
					mu.Lock()
					got[v] = true
					mu.Unlock()
					if m, ok := r.f.num("mid"); ok {
						_ = c.conn.WriteMessage(1, []byte(`{"op":"ack","mid":`+strconv.FormatUint(m, 10)+`}`))
					}
					// keep subscribing from a possibly taken-over conn
					_ = c.conn.WriteMessage(1, []byte(`{"op":"sub","topic":"t","ack":true}`))
				}
			case <-c.closed:
				return
			case <-stop:
				return
			}
		}
	}
	c0 := dial(t, surl)
	c0.expect("session")
	c0.mustAck(map[string]any{"op": "sub", "topic": "t", "ack": true, "inflight": 8})
	stop := make(chan struct{})
	go reader(c0, stop)
	const N = 3000
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; i < N; i++ {
			_ = b.Publish(context.Background(), broker.Message{Topic: "t", Data: []byte(strconv.Itoa(i))})
		}
	}()
	for k := 0; k < 15; k++ {
		// a gap, not a condition: the takeovers spread over the publishing
		time.Sleep(15 * time.Millisecond)
		c := dial(t, surl)
		go reader(c, stop)
	}
	<-pubDone
	defer close(stop)
	eventually(t, "every message received or counted as dropped", func() bool {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		return uint64(n)+b.Stats().Dropped >= N
	})
}
