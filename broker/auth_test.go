package broker_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
)

// tokenAuth is an application's own user store: two tokens, one for each
// device, and a third that expires soon.
func tokenAuth(expiring time.Time) func(*http.Request) (*broker.Identity, error) {
	return func(r *http.Request) (*broker.Identity, error) {
		tok, err := broker.Credential(r)
		if err != nil {
			return nil, err
		}
		switch tok {
		case "tok-a":
			return &broker.Identity{Subject: "dev-a"}, nil
		case "tok-b":
			return &broker.Identity{Subject: "dev-b"}, nil
		case "tok-exp":
			return &broker.Identity{Subject: "dev-e", Expires: expiring}, nil
		case "tok-old":
			return &broker.Identity{Subject: "dev-o", Expires: time.Now().Add(-time.Hour)}, nil
		}
		return nil, errors.New("unknown token")
	}
}

// ownPrefix lets each device use only topics under its own subject.
func ownPrefix(id *broker.Identity, _ broker.Action, topic string) bool {
	return id != nil && strings.HasPrefix(topic, "dev/"+id.Subject+"/")
}

func bearerEntry(tok string) string {
	return broker.BearerSubprotocol + base64.RawURLEncoding.EncodeToString([]byte(tok))
}

func TestAuthenticateRefusals(t *testing.T) {
	b, url := startBroker(t, broker.Options{Authenticate: tokenAuth(time.Time{})})
	big := strings.Repeat("x", 64<<10)
	for _, tc := range []struct {
		name      string
		query     string
		h         http.Header
		challenge string
		body      string
	}{
		{"missing", "", nil, `Bearer realm="ferry"`, "no credential: send Authorization: Bearer, a ferry.bearer.* subprotocol or ?token="},
		{"garbage", "", http.Header{"Authorization": {"Bearer nope"}}, `error="invalid_token", error_description="unknown token"`, "unknown token"},
		{"not bearer", "", http.Header{"Authorization": {"Basic dXNlcjpwdw=="}}, `error="invalid_token"`, "is not Bearer <token>"},
		{"expired", "", http.Header{"Authorization": {"Bearer tok-old"}}, `error_description="token expired at `, "token expired at"},
		{"64 KiB token", "?token=" + big, nil, `error="invalid_token"`, "over 16384 bytes"},
		{"two places that disagree", "?token=tok-b", http.Header{"Authorization": {"Bearer tok-a"}}, `error="invalid_token"`, "different tokens"},
		{"bad base64 entry", "", http.Header{"Sec-Websocket-Protocol": {"ferry.v1.json, ferry.bearer.!!"}}, `error="invalid_token"`, "base64url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := testutil.Upgrade(t, url+tc.query, tc.h)
			if code != 401 || !strings.Contains(h.Get("WWW-Authenticate"), tc.challenge) || !strings.Contains(body, tc.body) {
				t.Fatalf("status %d, WWW-Authenticate %q, body %q", code, h.Get("WWW-Authenticate"), body)
			}
			if strings.Contains(body, "x"+"xxxxxxxx") {
				t.Fatal("the body repeats the token")
			}
		})
	}
	if n := b.Stats().AuthFailures; n != 7 {
		t.Fatalf("%d auth failures counted, want 7", n)
	}
	// a token alone as the only subprotocol cannot be echoed to a browser
	code, body, _ := testutil.Upgrade(t, url, http.Header{"Sec-Websocket-Protocol": {bearerEntry("tok-a")}})
	if code != 400 || strings.Contains(body, base64.RawURLEncoding.EncodeToString([]byte("tok-a"))) {
		t.Fatalf("bearer entry alone: %d %q", code, body)
	}
}

// An Authenticate that wraps ErrNoCredential in words of its own (other
// ways to authenticate) gets the missing-credential 401 with its words.
func TestMissingCredentialOwnWords(t *testing.T) {
	_, url := startBroker(t, broker.Options{Authenticate: func(*http.Request) (*broker.Identity, error) {
		return nil, fmt.Errorf("%w; or present a client certificate", broker.ErrNoCredential)
	}})
	code, body, h := testutil.Upgrade(t, url, nil)
	if code != 401 || h.Get("WWW-Authenticate") != `Bearer realm="ferry"` || body != broker.ErrNoCredential.Error()+"; or present a client certificate" {
		t.Fatalf("status %d, WWW-Authenticate %q, body %q", code, h.Get("WWW-Authenticate"), body)
	}
}

// The three places a token may come from, the subprotocol one never
// echoed; the same token in two places is fine.
func TestCredentialPlaces(t *testing.T) {
	_, url := startBroker(t, broker.Options{Authenticate: tokenAuth(time.Time{})})
	for _, tc := range []struct {
		name  string
		query string
		h     http.Header
		proto string
	}{
		{"header", "", http.Header{"Authorization": {"Bearer tok-a"}}, ""},
		{"subprotocol", "", http.Header{"Sec-Websocket-Protocol": {bearerEntry("tok-a") + ", ferry.v1.msgpack"}}, "ferry.v1.msgpack"},
		{"query", "?token=tok-a", nil, ""},
		{"header and query agreeing", "?token=tok-a", http.Header{"Authorization": {"Bearer tok-a"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, h := testutil.Upgrade(t, url+tc.query, tc.h)
			if code != http.StatusSwitchingProtocols || h.Get("Sec-WebSocket-Protocol") != tc.proto {
				t.Fatalf("status %d, protocol %q", code, h.Get("Sec-WebSocket-Protocol"))
			}
		})
	}
}

// Device A cannot publish or subscribe under device B's prefix while both
// are connected; refusals are err forbidden with the id, and the
// connection and its subscriptions go on.
func TestAuthorizeForbidden(t *testing.T) {
	b, url := startBroker(t, broker.Options{Authenticate: tokenAuth(time.Time{}), Authorize: ownPrefix})
	a := dialAuth(t, url, "tok-a")
	bb := dialAuth(t, url, "tok-b")
	bb.mustAck(map[string]any{"op": "sub", "topic": "dev/dev-b/#"})
	a.mustAck(map[string]any{"op": "sub", "topic": "dev/dev-a/#"})
	for _, req := range []map[string]any{
		{"op": "pub", "topic": "dev/dev-b/cmd", "data": 1},
		{"op": "sub", "topic": "dev/dev-b/#"},
		{"op": "sub", "topic": "#"},
		{"op": "sub", "topic": "dev/dev-b/x", "group": "g"},
		{"op": "unsub", "topic": "dev/dev-b/#"},
	} {
		f := a.request(req, 9)
		if f.op() != "err" || f["code"] != "forbidden" || !strings.Contains(f["reason"].(string), req["op"].(string)+": not allowed on") {
			t.Fatalf("%v: got %v", req, f)
		}
	}
	a.mustAck(map[string]any{"op": "pub", "topic": "dev/dev-a/t", "data": "mine"})
	if f := a.expect("msg"); f["data"] != "mine" {
		t.Fatalf("own message: %v", f)
	}
	bb.noFrame() // nothing of A's reached B
	if n := b.Stats().Forbidden; n != 5 {
		t.Fatalf("%d refusals counted, want 5", n)
	}
}

// A connection whose credential expires is closed with 4001.
func TestTokenExpiryCloses4001(t *testing.T) {
	b, url := startBroker(t, broker.Options{Authenticate: tokenAuth(time.Now().Add(300 * time.Millisecond))})
	c := dialAuth(t, url, "tok-exp")
	other := dialAuth(t, url, "tok-a")
	if ci := c.waitClosed(); ci.code != 4001 || ci.reason != "token expired" {
		t.Fatalf("closed with %d %q, want 4001 token expired", ci.code, ci.reason)
	}
	other.alive()
	if n := b.Stats().TokenExpired; n != 1 {
		t.Fatalf("%d expiries counted", n)
	}
}

func dialAuth(t *testing.T, url, token string) *client {
	t.Helper()
	return dialWith(t, url+"?token="+token, dialOpts{})
}
