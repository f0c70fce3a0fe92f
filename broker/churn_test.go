package broker_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

func TestRegressionGroupStress(t *testing.T) {
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
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	got := len(seen)
	mu.Unlock()
	st := b.Stats()
	t.Logf("distinct %d of %d, dropped %d redelivered %d", got, P*N, st.Dropped, st.Redelivered)
	if uint64(got)+st.Dropped < P*N {
		t.Errorf("lost %d messages not counted as dropped", P*N-got-int(st.Dropped))
	}
}

func TestRegressionLocalAckDoubleCount(t *testing.T) {
	b, _ := startBroker(t, broker.Options{AckQueue: 1, MaxStall: -1})
	block := make(chan struct{})
	s, err := b.Subscribe("d", func(*broker.Message) error { <-block; return nil }, broker.WithAck(1))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		_ = b.Publish(context.Background(), broker.Message{Topic: "d", Data: []byte("1")})
	}
	st := b.Stats()
	t.Logf("Dropped=%d (3 messages dropped) sub.Dropped=%d", st.Dropped, s.Dropped())
	close(block)
	if st.Dropped != 3 {
		t.Errorf("Dropped=%d, want 3", st.Dropped)
	}
}

func TestRegressionTakeoverStress(t *testing.T) {
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
	var last *client
	for k := 0; k < 15; k++ {
		time.Sleep(15 * time.Millisecond)
		c := dial(t, surl)
		go reader(c, stop)
		last = c
	}
	<-pubDone
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == N {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	mu.Lock()
	n := len(got)
	mu.Unlock()
	st := b.Stats()
	t.Logf("got %d of %d; dropped %d redelivered %d pending %d inflight %d", n, N, st.Dropped, st.Redelivered, st.AckPending, st.AckInflight)
	if uint64(n)+st.Dropped < N {
		t.Errorf("lost %d", N-n)
	}
	_ = last
}

func TestRegressionUnconvertibleWedgesAckSub(t *testing.T) {
	b, url := startBroker(t, broker.Options{MaxFrameBytes: 1024, AckWait: 50 * time.Millisecond})
	sub := dial(t, url) // JSON
	sub.mustAck(map[string]any{"op": "sub", "topic": "q", "ack": true, "inflight": 1})
	bin := append([]byte{0xc5, 0x03, 0x84}, make([]byte, 900)...) // msgpack bin16, 900 bytes
	if err := b.Publish(context.Background(), broker.Message{Topic: "q", Data: bin, Codec: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), broker.Message{Topic: "q", Data: []byte(`"next"`)}); err != nil {
		t.Fatal(err)
	}
	errs, msgs := 0, 0
	deadline := time.After(400 * time.Millisecond)
loop:
	for {
		select {
		case r := <-sub.frames:
			switch r.f.op() {
			case "err":
				errs++
			case "msg":
				msgs++
			}
		case <-deadline:
			break loop
		}
	}
	st := b.Stats()
	t.Logf("in 400ms: %d err frames, %d msgs; inflight %d pending %d dropped %d redelivered %d", errs, msgs, st.AckInflight, st.AckPending, st.Dropped, st.Redelivered)
	if msgs == 0 {
		t.Errorf("subscription wedged: the message after the unsendable one never arrives")
	}
}
