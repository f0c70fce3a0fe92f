package client_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// A publish over the broker's frame limit: the broker closes with 1009, the
// record stays at the head of the outbox and is resent on every reconnect.
func TestRegressionOversizePoison(t *testing.T) {
	tb := newTestBroker(t, broker.Options{MaxFrameBytes: 64 << 10})
	ctx := context.Background()
	var disconnects atomic.Int32
	var lastErr atomic.Value
	c := connect(t, tb.url(), client.WithPublishBuffer(100, 1<<20), client.OnStatus(func(s client.Status, err error) {
		if s == client.Disconnected {
			disconnects.Add(1)
			if err != nil {
				lastErr.Store(err.Error())
			}
		}
	}))
	big := strings.Repeat("x", 100<<10)
	f, err := c.PublishAsync(ctx, "big", big)
	if err != nil {
		t.Fatal(err)
	}
	small, _ := c.PublishAsync(ctx, "small", 1)
	time.Sleep(3 * time.Second)
	t.Logf("after 3s: disconnects=%d, last=%v, big done=%v small done=%v", disconnects.Load(), lastErr.Load(), isDone(f), isDone(small))
	if disconnects.Load() > 2 {
		t.Errorf("reconnect loop: %d disconnects in 3s; the small publish behind it is stuck: done=%v", disconnects.Load(), isDone(small))
	}
}

func isDone(f *client.PublishFuture) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

// Connect's ctx is not honoured during the WebSocket handshake (gws sets its
// own deadline of now+HandshakeTimeout).
func TestRegressionConnectCtxIgnoredInHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(6 * time.Second); c.Close() }()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = client.Connect(ctx, "ws://"+ln.Addr().String()+"/ws")
	el := time.Since(start)
	t.Logf("Connect returned after %v: %v", el.Round(time.Millisecond), err)
	if el > time.Second {
		t.Errorf("Connect ignored a 200ms ctx: took %v", el)
	}
	time.Sleep(6 * time.Second)
}

func TestRegressionSessionsDisabled(t *testing.T) {
	tb := newTestBroker(t, broker.Options{SessionTTL: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, tb.url())
	if err != nil {
		t.Errorf("cannot connect to a broker with sessions disabled: %v", err)
		return
	}
	c.Close()
}

func TestRegressionCloseFromHandler(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	c, err := client.Connect(ctx, tb.url())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	_, err = c.Subscribe(ctx, "x", func(*client.Message) error { _ = c.Close(); close(done); return nil })
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Publish(ctx, "x", 1)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from a handler did not return")
	}
}

func TestRegressionCloseFromOnStatus(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	ctx := context.Background()
	var cl atomic.Pointer[client.Client]
	var once sync.Once
	done := make(chan struct{})
	c, err := client.Connect(ctx, tb.url(), client.WithReconnect(10*time.Millisecond, 20*time.Millisecond, 2),
		client.OnStatus(func(s client.Status, err error) {
			if c := cl.Load(); c != nil && s == client.Disconnected {
				once.Do(func() { _ = c.Close(); close(done) })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Store(c)
	tb.stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close called from OnStatus did not return")
	}
}
