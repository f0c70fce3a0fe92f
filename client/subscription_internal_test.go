package client

import (
	"log/slog"
	"sync"
	"testing"
)

// enqueue racing with stop() does not send on the closed ready channel:
// the send happens with s.mu held, as the close does.
func TestEnqueueRacingStopDoesNotPanic(t *testing.T) {
	c := &Client{opts: Options{PendingMessages: 1000, PendingBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}}
	var panics int
	for i := 0; i < 20000 && panics == 0; i++ {
		s := &Subscription{c: c, filter: "t", ready: make(chan struct{}, 1), done: make(chan struct{}), maxMsgs: 1000, maxBytes: 1 << 20}
		var wg sync.WaitGroup
		wg.Add(2)
		start := make(chan struct{})
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panics++
					t.Logf("iteration %d: panic in enqueue: %v", i, r)
				}
			}()
			<-start
			s.enqueue(&connection{dead: make(chan struct{})}, &Message{Topic: "t"})
		}()
		go func() { defer wg.Done(); <-start; s.stop() }()
		close(start)
		wg.Wait()
	}
	if panics > 0 {
		t.Errorf("enqueue panicked (send on closed channel)")
	}
}

// After finish() (the Drain path) the subscription is stopped: a late
// enqueue is ignored instead of sending on the closed ready channel.
func TestEnqueueAfterFinishIgnored(t *testing.T) {
	c := &Client{opts: Options{PendingMessages: 1000, PendingBytes: 1 << 20, Logger: slog.New(slog.DiscardHandler)}}
	s := &Subscription{c: c, filter: "t", ready: make(chan struct{}, 1), done: make(chan struct{}), maxMsgs: 1000, maxBytes: 1 << 20}
	s.finish()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("enqueue after finish panicked: %v", r)
		}
	}()
	s.enqueue(&connection{dead: make(chan struct{})}, &Message{Topic: "t"})
}
