package client_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/golang-jwt/jwt/v5"
)

var refreshSecret = []byte("a secret of at least sixteen bytes")

// jwtBroker starts a broker that verifies HS256 tokens with refreshSecret
// and a leeway of a millisecond.
func jwtBroker(t *testing.T) *testBroker {
	t.Helper()
	v, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{refreshSecret}, Leeway: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return newTestBroker(t, broker.Options{Authenticate: v.Authenticate})
}

// mint signs a token for sub that expires after ttl, allowed to subscribe
// to subs and publish anywhere.
func mint(t *testing.T, sub string, ttl time.Duration, subs ...string) (string, time.Time) {
	t.Helper()
	exp := time.Now().Add(ttl).Truncate(time.Second)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "exp": exp.Unix(),
		"ferry": map[string]any{"pub": []string{"#"}, "sub": subs},
	}).SignedString(refreshSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok, exp
}

// The client refreshes its token in-band before it expires: the
// connection lives past the first token's exp, with its subscription,
// without a reconnect.
func TestTokenRefreshInBand(t *testing.T) {
	tb := jwtBroker(t)
	var calls atomic.Int32
	var firstExp atomic.Int64
	source := func(ctx context.Context) (string, error) {
		tok, exp := mint(t, "dev-1", 2*time.Second, "#")
		if calls.Add(1) == 1 {
			firstExp.Store(exp.UnixNano())
		}
		return tok, nil
	}
	var mu sync.Mutex
	var statuses []string
	c, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)), client.WithTokenSource(source),
		client.OnStatus(func(s client.Status, err error) {
			if s == client.Disconnected || s == client.Reconnecting {
				mu.Lock()
				statuses = append(statuses, s.String())
				mu.Unlock()
			}
		}),
		client.OnError(func(err error) { t.Errorf("OnError: %v", err) }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 16)
	if _, err := c.Subscribe(context.Background(), "t", func(m *client.Message) error {
		got <- string(m.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two refreshes, and the first token's exp passed", func() bool {
		return calls.Load() >= 3 && time.Now().After(time.Unix(0, firstExp.Load()).Add(10*time.Millisecond))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Publish(ctx, "t", "after"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != `"after"` {
		t.Fatalf("got %s", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(statuses) != 0 {
		t.Fatalf("status changes %v: the connection should have lasted", statuses)
	}
	if n := tb.b.Stats().TokenExpired; n != 0 {
		t.Fatalf("%d expiries at the broker", n)
	}
}

// A refresh whose token allows less removes the subscriptions it no longer
// allows, reported through OnError; the others go on.
func TestTokenRefreshRevokes(t *testing.T) {
	tb := jwtBroker(t)
	var calls atomic.Int32
	source := func(ctx context.Context) (string, error) {
		if calls.Add(1) == 1 {
			tok, _ := mint(t, "dash", 2*time.Second, "keep", "gone")
			return tok, nil
		}
		tok, _ := mint(t, "dash", time.Hour, "keep")
		return tok, nil
	}
	errs := make(chan error, 16)
	c, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)), client.WithTokenSource(source),
		client.OnError(func(err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, f := range []string{"keep", "gone"} {
		if _, err := c.Subscribe(context.Background(), f, func(*client.Message) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), `subscription "gone" removed by the broker`) || !strings.Contains(err.Error(), "forbidden") {
			t.Fatalf("OnError: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no report of the removed subscription")
	}
	if n := tb.b.Stats().Subscriptions; n != 1 {
		t.Fatalf("%d subscriptions at the broker, want 1", n)
	}
}

// When the source cannot give a token before exp, the refresh failures are
// reported, the broker closes with 4001, and the client reconnects with
// the source's next token.
func TestTokenRefreshFailsThenReconnects(t *testing.T) {
	tb := jwtBroker(t)
	var calls atomic.Int32
	var disconnected atomic.Bool
	source := func(ctx context.Context) (string, error) {
		switch {
		case calls.Add(1) == 1:
			tok, _ := mint(t, "dev", 2*time.Second, "#")
			return tok, nil
		case !disconnected.Load():
			tok, _ := mint(t, "someone-else", time.Hour, "#")
			return tok, nil // refused: another subject
		}
		tok, _ := mint(t, "dev", time.Hour, "#")
		return tok, nil
	}
	reconnected := make(chan struct{})
	var once sync.Once
	errs := make(chan error, 64)
	c, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)), client.WithTokenSource(source),
		client.WithReconnect(time.Millisecond, 10*time.Millisecond, 2),
		client.OnError(func(err error) {
			select {
			case errs <- err:
			default:
			}
		}),
		client.OnStatus(func(s client.Status, err error) {
			switch s {
			case client.Disconnected:
				if err != nil && strings.Contains(err.Error(), "4001 token expired") {
					disconnected.Store(true)
				}
			case client.Connected:
				if disconnected.Load() {
					once.Do(func() { close(reconnected) })
				}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "token refresh") || !strings.Contains(err.Error(), "unauthorized") {
			t.Fatalf("OnError: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the refused refresh was not reported")
	}
	select {
	case <-reconnected:
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect after the token expired")
	}
	eventually(t, "the expiry counted at the broker", func() bool { return tb.b.Stats().TokenExpired == 1 })
}
