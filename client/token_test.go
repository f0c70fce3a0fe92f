package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// A token source is asked on every connection attempt: when the broker
// closes a connection whose token expired (4001), the client reconnects
// with a fresh token and goes on.
func TestTokenSourceOnEveryConnect(t *testing.T) {
	var issued atomic.Int32
	expiries := map[string]time.Time{}
	var mu sync.Mutex
	tb := newTestBroker(t, broker.Options{Authenticate: func(r *http.Request) (*broker.Identity, error) {
		tok, err := broker.Credential(r)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		exp, ok := expiries[tok]
		mu.Unlock()
		if !ok {
			return nil, errors.New("unknown token")
		}
		all := []string{"#"}
		return &broker.Identity{Subject: "dev", Expires: exp, Permissions: &broker.Permissions{
			Pub: broker.PermissionLists{Allow: all}, Sub: broker.PermissionLists{Allow: all}}}, nil
	}})
	source := func(ctx context.Context) (string, error) {
		n := issued.Add(1)
		tok := "tok-" + string(rune('a'+n))
		mu.Lock()
		expiries[tok] = time.Now().Add(300 * time.Millisecond)
		mu.Unlock()
		return tok, nil
	}
	expired := make(chan struct{}, 16)
	c, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)), client.WithTokenSource(source),
		client.WithReconnect(time.Millisecond, 10*time.Millisecond, 2),
		client.OnStatus(func(s client.Status, err error) {
			if s == client.Disconnected && err != nil && strings.Contains(err.Error(), "4001 token expired") {
				select {
				case expired <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 2; i++ {
		select {
		case <-expired:
		case <-time.After(10 * time.Second):
			t.Fatalf("no 4001 after %d expiries", i)
		}
	}
	eventually(t, "a third token", func() bool { return issued.Load() >= 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Publish(ctx, "t", 1); err != nil {
		t.Fatalf("publish after reconnecting with fresh tokens: %v", err)
	}
}

// A token source that fails fails the connection attempt, with its error.
func TestTokenSourceError(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	_, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)),
		client.WithTokenSource(func(context.Context) (string, error) { return "", errors.New("vault unreachable") }))
	if err == nil || !strings.Contains(err.Error(), "token source: vault unreachable") {
		t.Fatalf("Connect: %v", err)
	}
}
