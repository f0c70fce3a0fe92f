package broker_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
)

// Publishes past the burst get rate_limited, exactly, with their id; the
// connection and its subscriptions go on.
func TestPubRateLimit(t *testing.T) {
	b, url := startBroker(t, broker.Options{PubRate: 0.001, PubBurst: 5})
	c := dial(t, url)
	c.mustAck(map[string]any{"op": "sub", "topic": "t"})
	for i := 0; i < 5; i++ {
		c.mustAck(map[string]any{"op": "pub", "topic": "t", "data": i})
		c.expect("msg")
	}
	f := c.request(map[string]any{"op": "pub", "topic": "t", "data": 5}, 77)
	if f.op() != "err" || f["code"] != "rate_limited" || !strings.Contains(f["reason"].(string), "burst 5") {
		t.Fatalf("6th publish: %v", f)
	}
	c.alive()
	other := dial(t, url) // a limit of each connection's own
	other.mustAck(map[string]any{"op": "pub", "topic": "t", "data": "other"})
	if f := c.expect("msg"); f["data"] != "other" {
		t.Fatalf("subscription after the refusal: %v", f)
	}
	if n := b.Stats().RateLimited; n != 1 {
		t.Fatalf("%d rate-limited publishes counted", n)
	}
}

// Over MaxConnections a request gets 503 with a reason; a connection that
// ends makes room again.
func TestMaxConnections(t *testing.T) {
	b, url := startBroker(t, broker.Options{MaxConnections: 2})
	c1 := dial(t, url)
	dial(t, url)
	_, resp, err := tryDial(t, url, dialOpts{})
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("third connection: %v %v", resp, err)
	}
	_ = c1.conn.NetConn().Close()
	<-c1.closed
	eventually(t, "room again", func() bool {
		c, _, err := tryDial(t, url, dialOpts{})
		if err != nil {
			return false
		}
		c.alive()
		return true
	})
	if n := b.Stats().ConnectionsRefused; n < 1 {
		t.Fatalf("%d refusals counted", n)
	}
	if _, err := broker.New(broker.Options{MaxConnections: -1}); err == nil || !strings.Contains(err.Error(), "MaxConnections") {
		t.Fatalf("negative MaxConnections: %v", err)
	}
}

// New connections per client IP over the rate get 429 with Retry-After;
// another client (named by a trusted proxy's X-Forwarded-For) is not
// affected, and X-Forwarded-For from anyone else is ignored.
func TestConnRatePerIP(t *testing.T) {
	b, url := startBroker(t, broker.Options{ConnRate: 0.001, ConnBurst: 2, TrustedProxies: []string{"127.0.0.1"}})
	for i := 0; i < 2; i++ {
		if code, body, _ := testutil.Upgrade(t, url, nil); code != 101 {
			t.Fatalf("connection %d: %d %q", i+1, code, body)
		}
	}
	code, body, h := testutil.Upgrade(t, url, nil)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, "too many new connections") {
		t.Fatalf("third connection: %d %q Retry-After %q", code, body, h.Get("Retry-After"))
	}
	// through the trusted proxy (127.0.0.1), another client
	if code, body, _ := testutil.Upgrade(t, url, http.Header{"X-Forwarded-For": {"198.51.100.7"}}); code != 101 {
		t.Fatalf("another client behind the proxy: %d %q", code, body)
	}
	if n := b.Stats().ConnectionsRefused; n != 1 {
		t.Fatalf("%d refusals counted", n)
	}
	_, url2 := startBroker(t, broker.Options{ConnRate: 0.001, ConnBurst: 1})
	testutil.Upgrade(t, url2, nil)
	if code, _, _ := testutil.Upgrade(t, url2, http.Header{"X-Forwarded-For": {"198.51.100.8"}}); code != 429 {
		t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d", code)
	}
	if _, err := broker.New(broker.Options{ConnRate: 1, TrustedProxies: []string{"not-an-ip"}}); err == nil || !strings.Contains(err.Error(), "TrustedProxies") {
		t.Fatalf("bad TrustedProxies: %v", err)
	}
}
