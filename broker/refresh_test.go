package broker_test

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
)

// tokenTable is an Authenticate over a table of tokens that a test may
// change while the broker runs.
type tokenTable struct {
	mu  sync.Mutex
	ids map[string]broker.Identity
}

func (tt *tokenTable) set(tok string, id broker.Identity) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.ids == nil {
		tt.ids = make(map[string]broker.Identity)
	}
	tt.ids[tok] = id
}

func (tt *tokenTable) authenticate(r *http.Request) (*broker.Identity, error) {
	tok, err := broker.Credential(r)
	if err != nil {
		return nil, err
	}
	tt.mu.Lock()
	defer tt.mu.Unlock()
	id, ok := tt.ids[tok]
	if !ok {
		return nil, errors.New("unknown token")
	}
	return &id, nil
}

func subPerms(allow ...string) *broker.Permissions {
	return &broker.Permissions{Pub: broker.PermissionLists{Allow: []string{"#"}}, Sub: broker.PermissionLists{Allow: allow}}
}

// A refresh before exp keeps the connection past the old token's expiry;
// a connection with the same old token and no refresh is closed with 4001
// at that expiry (which shows that it passed).
func TestRefreshKeepsConnection(t *testing.T) {
	var tt tokenTable
	soon := time.Now().Add(500 * time.Millisecond)
	tt.set("old", broker.Identity{Subject: "dev-1", Expires: soon, Permissions: subPerms("#")})
	tt.set("fresh", broker.Identity{Subject: "dev-1", Expires: time.Now().Add(time.Hour), Permissions: subPerms("#")})
	b, url := startBroker(t, broker.Options{Authenticate: tt.authenticate})
	kept := dialAuth(t, url, "old")
	control := dialAuth(t, url, "old")
	kept.mustAck(map[string]any{"op": "sub", "topic": "t"})
	kept.mustAck(map[string]any{"op": "auth", "token": "fresh"})
	if ci := control.waitClosed(); ci.code != 4001 || ci.reason != "token expired" {
		t.Fatalf("control closed with %d %q, want 4001 token expired", ci.code, ci.reason)
	}
	// the old expiry has passed: the refreshed connection and its
	// subscription go on
	kept.mustAck(map[string]any{"op": "pub", "topic": "t", "data": 1})
	if f := kept.expect("msg"); f["topic"] != "t" {
		t.Fatalf("got %v", f)
	}
	// counted after the close frame is queued: wait for it, then check
	// that it stays the control's alone
	eventually(t, "the control's expiry counted", func() bool { return b.Stats().TokenExpired == 1 })
	kept.alive()
	if n := b.Stats().TokenExpired; n != 1 {
		t.Fatalf("%d expiries counted, want 1 (the control's)", n)
	}
}

// A refresh that is refused (another subject, an invalid or expired token,
// no token) gets err unauthorized (bad_frame without a token) and changes
// nothing: the old token's permissions stay, and so does its expiry.
func TestRefreshRefusals(t *testing.T) {
	var tt tokenTable
	exp := time.Now().Add(2 * time.Second)
	tt.set("mine", broker.Identity{Subject: "dev-1", Expires: exp, Permissions: subPerms("dev-1/#")})
	tt.set("other", broker.Identity{Subject: "dev-2", Expires: time.Now().Add(time.Hour), Permissions: subPerms("#")})
	tt.set("stale", broker.Identity{Subject: "dev-1", Expires: time.Now().Add(-time.Minute), Permissions: subPerms("#")})
	b, url := startBroker(t, broker.Options{Authenticate: tt.authenticate})
	c := dialAuth(t, url, "mine")
	for _, tc := range []struct {
		token, code, reason string
	}{
		{"other", "unauthorized", "auth: the token's subject is not the connection's"},
		{"garbage", "unauthorized", "auth: unknown token"},
		{"stale", "unauthorized", "auth: token expired at"},
		{strings.Repeat("x", 20<<10), "unauthorized", "over 16384 bytes"},
		{"", "bad_frame", `auth: missing field "token"`},
	} {
		f := c.request(map[string]any{"op": "auth", "token": tc.token}, 5)
		if f.op() != "err" || f["code"] != tc.code || !strings.Contains(f["reason"].(string), tc.reason) {
			t.Fatalf("auth with %.20q: got %v, want %s %q", tc.token, f, tc.code, tc.reason)
		}
		if strings.Contains(f["reason"].(string), "xxxxxxxx") {
			t.Fatal("the reason repeats the token")
		}
	}
	// still the old permissions: "other" (which allows #) took no effect
	if f := c.request(map[string]any{"op": "sub", "topic": "#"}, 6); f["code"] != "forbidden" {
		t.Fatalf("sub # after refused refreshes: %v", f)
	}
	c.mustAck(map[string]any{"op": "sub", "topic": "dev-1/x"})
	if n := b.Stats().AuthFailures; n != 4 {
		t.Fatalf("%d auth failures counted, want 4", n)
	}
	// and still the old expiry
	if ci := c.waitClosed(); ci.code != 4001 {
		t.Fatalf("closed with %d %q, want 4001", ci.code, ci.reason)
	}
}

// A broker without authentication refuses auth frames, and the connection
// goes on.
func TestRefreshWithoutAuthentication(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	c := dial(t, url)
	f := c.request(map[string]any{"op": "auth", "token": "x"}, 3)
	if f.op() != "err" || f["code"] != "unauthorized" || !strings.Contains(f["reason"].(string), "does not authenticate") {
		t.Fatalf("got %v", f)
	}
	c.alive()
}

// A refresh with narrower permissions removes the subscriptions they no
// longer allow, an err forbidden each naming the filter (and the group),
// before the ack; the others go on.
func TestRefreshRevokesSubscriptions(t *testing.T) {
	var tt tokenTable
	tt.set("wide", broker.Identity{Subject: "dash", Permissions: subPerms("site/#")})
	tt.set("narrow", broker.Identity{Subject: "dash", Permissions: subPerms("site/a/#")})
	tt.set("pub", broker.Identity{Subject: "pub", Permissions: subPerms()})
	_, url := startBroker(t, broker.Options{Authenticate: tt.authenticate})
	c := dialAuth(t, url, "wide")
	p := dialAuth(t, url, "pub")
	c.mustAck(map[string]any{"op": "sub", "topic": "site/a/+"})
	c.mustAck(map[string]any{"op": "sub", "topic": "site/#"})
	c.mustAck(map[string]any{"op": "sub", "topic": "site/b/x", "group": "g"})
	c.send(map[string]any{"op": "auth", "token": "narrow", "id": 8})
	revoked := map[string]string{}
	for range 2 {
		f := c.expectErr("forbidden")
		if !strings.Contains(f["reason"].(string), "no longer allowed") {
			t.Fatalf("reason %q", f["reason"])
		}
		g, _ := f["group"].(string)
		revoked[f["topic"].(string)] = g
	}
	if len(revoked) != 2 || revoked["site/#"] != "" || revoked["site/b/x"] != "g" {
		t.Fatalf("revoked %v, want site/# and site/b/x in group g", revoked)
	}
	if f := c.expect("ack"); f["id"] != float64(8) {
		t.Fatalf("got %v, want the auth's ack", f)
	}
	p.mustAck(map[string]any{"op": "pub", "topic": "site/b/x", "data": "b"})
	p.mustAck(map[string]any{"op": "pub", "topic": "site/a/x", "data": "a"})
	if f := c.expect("msg"); f["data"] != "a" {
		t.Fatalf("got %v, want only site/a/x's message", f)
	}
	c.noFrame()
	// and the new permissions hold for new requests
	if f := c.request(map[string]any{"op": "sub", "topic": "site/#"}, 9); f["code"] != "forbidden" {
		t.Fatalf("sub site/# after the refresh: %v", f)
	}
}

// A token's Limits override the broker's: its publish rate and burst, and
// its subscription limit; a refresh replaces them.
func TestIdentityLimits(t *testing.T) {
	var tt tokenTable
	tt.set("small", broker.Identity{Subject: "d", Permissions: subPerms("#"),
		Limits: &broker.Limits{PubRate: 0.001, PubBurst: 3, MaxSubscriptions: 2}})
	tt.set("bigger", broker.Identity{Subject: "d", Permissions: subPerms("#"),
		Limits: &broker.Limits{PubBurst: 5, MaxSubscriptions: 3}})
	tt.set("plain", broker.Identity{Subject: "p", Permissions: subPerms("#")})
	_, url := startBroker(t, broker.Options{Authenticate: tt.authenticate, PubRate: 0.001, PubBurst: 1, MaxSubscriptions: 1})
	c := dialAuth(t, url, "small")
	for i := range 3 {
		c.mustAck(map[string]any{"op": "pub", "topic": "t", "data": i})
	}
	if f := c.request(map[string]any{"op": "pub", "topic": "t", "data": 3}, 4); f["code"] != "rate_limited" {
		t.Fatalf("4th publish over a burst of 3: %v", f)
	}
	c.mustAck(map[string]any{"op": "sub", "topic": "a"})
	c.mustAck(map[string]any{"op": "sub", "topic": "b"})
	if f := c.request(map[string]any{"op": "sub", "topic": "c"}, 5); f["code"] != "limit" {
		t.Fatalf("3rd subscription over max_subs 2: %v", f)
	}
	// the refresh raises the subscription limit to 3 (and the burst to 5,
	// keeping the rate)
	c.mustAck(map[string]any{"op": "auth", "token": "bigger"})
	c.mustAck(map[string]any{"op": "sub", "topic": "c"})
	if f := c.request(map[string]any{"op": "sub", "topic": "d"}, 6); f["code"] != "limit" {
		t.Fatalf("4th subscription over max_subs 3: %v", f)
	}
	// a connection without limits of its own has the broker's
	p := dialAuth(t, url, "plain")
	p.mustAck(map[string]any{"op": "pub", "topic": "t", "data": 0})
	if f := p.request(map[string]any{"op": "pub", "topic": "t", "data": 1}, 7); f["code"] != "rate_limited" {
		t.Fatalf("2nd publish over the broker's burst of 1: %v", f)
	}
	p.mustAck(map[string]any{"op": "sub", "topic": "a"})
	if f := p.request(map[string]any{"op": "sub", "topic": "b"}, 8); f["code"] != "limit" {
		t.Fatalf("2nd subscription over the broker's 1: %v", f)
	}
}

// A session id is its identity's own: another identity giving the same id
// gets a new session, not the first one's subscriptions; the owner
// resuming under a token with narrower permissions loses the subscriptions
// they no longer allow, before anything of theirs is delivered again.
func TestSessionsBelongToTheirIdentity(t *testing.T) {
	var tt tokenTable
	tt.set("a", broker.Identity{Subject: "dev-a", Permissions: subPerms("#")})
	tt.set("a-narrow", broker.Identity{Subject: "dev-a", Permissions: subPerms("keep")})
	tt.set("b", broker.Identity{Subject: "dev-b", Permissions: subPerms("#")})
	tt.set("pub", broker.Identity{Subject: "pub", Permissions: subPerms()})
	_, url := startBroker(t, broker.Options{Authenticate: tt.authenticate})
	a := dialAuth(t, url, "a&session=s1")
	if f := a.expect("session"); f["resumed"] != false {
		t.Fatalf("got %v", f)
	}
	a.mustAck(map[string]any{"op": "sub", "topic": "keep", "ack": true})
	a.mustAck(map[string]any{"op": "sub", "topic": "secret", "ack": true})
	p := dialAuth(t, url, "pub")
	p.mustAck(map[string]any{"op": "pub", "topic": "secret", "data": "s1"})
	if f := a.expect("msg"); f["data"] != "s1" {
		t.Fatalf("got %v", f)
	}
	_ = a.conn.NetConn().Close() // s1 stays unacknowledged
	<-a.closed

	bb := dialAuth(t, url, "b&session=s1")
	if f := bb.expect("session"); f["resumed"] != false || f["session"] != "s1" {
		t.Fatalf("another identity with the same session id: %v, want a new session", f)
	}
	p.mustAck(map[string]any{"op": "pub", "topic": "secret", "data": "s2"})
	bb.noFrame()

	a2 := dialAuth(t, url, "a-narrow&session=s1")
	if f := a2.expect("session"); f["resumed"] != true {
		t.Fatalf("the owner resuming: %v", f)
	}
	f := a2.expectErr("forbidden")
	if f["topic"] != "secret" || !strings.Contains(f["reason"].(string), "no longer allowed") {
		t.Fatalf("got %v", f)
	}
	// nothing of "secret" is delivered again (s1 unacknowledged, s2
	// queued); "keep" goes on
	p.mustAck(map[string]any{"op": "pub", "topic": "keep", "data": "k"})
	if f := a2.expect("msg"); f["topic"] != "keep" {
		t.Fatalf("got %v, want only keep's message", f)
	}
	a2.noFrame()
}
