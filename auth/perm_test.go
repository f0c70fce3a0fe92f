package auth_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lxzan/gws"
)

// wsConn is a plain gws client that hands over the frames it receives.
type wsConn struct {
	gws.BuiltinEventHandler
	frames chan map[string]any
	conn   *gws.Conn
}

func (w *wsConn) OnMessage(_ *gws.Conn, m *gws.Message) {
	var f map[string]any
	_ = json.Unmarshal(m.Bytes(), &f)
	w.frames <- f
	m.Close()
}

func dialToken(t *testing.T, url, token string) *wsConn {
	t.Helper()
	w := &wsConn{frames: make(chan map[string]any, 64)}
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, _, err := gws.NewClient(w, &gws.ClientOption{Addr: url, RequestHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	w.conn = c
	go c.ReadLoop()
	t.Cleanup(func() { _ = c.NetConn().Close() })
	return w
}

// request sends a frame with an id and returns the reply with that id.
func (w *wsConn) request(t *testing.T, f map[string]any, id int) map[string]any {
	t.Helper()
	f["id"] = id
	b, _ := json.Marshal(f)
	if err := w.conn.WriteString(string(b)); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-w.frames:
			if n, _ := r["id"].(float64); int(n) == id {
				return r
			}
		case <-deadline:
			t.Fatalf("no reply to %v", f)
		}
	}
}

func startPermBroker(t *testing.T, j *auth.JWT, acl []broker.ACLEntry) string {
	t.Helper()
	_, url := startBroker(t, broker.Options{Authenticate: j.Authenticate, ACL: acl})
	return url
}

func deviceToken(t *testing.T, sub string, ferry any) string {
	c := valid(sub)
	if ferry != nil {
		c["ferry"] = ferry
	}
	return sign(t, jwt.SigningMethodHS256, secret1, c)
}

// Permissions from the token's ferry claim with {sub} templates: device A
// cannot publish or subscribe under device B's prefix while both are
// connected; subscribe filters are checked as subsets; '$' topics need an
// explicit grant; unsafe template values drop their rule.
func TestFerryClaimPermissions(t *testing.T) {
	j, _ := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	url := startPermBroker(t, j, nil)
	grant := map[string]any{
		"pub": []string{"telemetry/{sub}/#"},
		"sub": map[string]any{"allow": []string{"telemetry/{sub}/#", "cmd/{sub}/+", "#"}, "deny": []string{"secret/#"}},
	}
	a := dialToken(t, url, deviceToken(t, "dev-a", grant))
	b := dialToken(t, url, deviceToken(t, "dev-b", grant))
	if r := b.request(t, map[string]any{"op": "sub", "topic": "telemetry/dev-b/#"}, 1); r["op"] != "ack" {
		t.Fatalf("B's own sub: %v", r)
	}
	for _, tc := range []struct {
		f    map[string]any
		want string
	}{
		{map[string]any{"op": "pub", "topic": "telemetry/dev-a/temp", "data": 1}, "ack"},
		{map[string]any{"op": "pub", "topic": "telemetry/dev-b/temp", "data": 1}, "forbidden"},
		{map[string]any{"op": "pub", "topic": "cmd/dev-a/x", "data": 1}, "forbidden"},
		{map[string]any{"op": "sub", "topic": "cmd/dev-a/+"}, "ack"},
		{map[string]any{"op": "sub", "topic": "telemetry/+/temp"}, "ack"}, // "#" allows it
		{map[string]any{"op": "sub", "topic": "secret/x"}, "forbidden"},
		{map[string]any{"op": "sub", "topic": "#"}, "forbidden"}, // overlaps secret/#
		{map[string]any{"op": "sub", "topic": "$SYS/#"}, "forbidden"},
	} {
		r := a.request(t, tc.f, 2)
		got, _ := r["code"].(string)
		if r["op"] == "ack" {
			got = "ack"
		}
		if got != tc.want {
			t.Errorf("%v: got %v, want %s", tc.f, r, tc.want)
		}
	}
	// only its own telemetry reached B
	if r := b.request(t, map[string]any{"op": "ping"}, 3); r["op"] != "pong" {
		t.Fatal(r)
	}
	select {
	case f := <-b.frames:
		t.Fatalf("B received %v", f)
	default:
	}

	// a subscription only as wide as the grant
	narrow := dialToken(t, url, deviceToken(t, "dev-1", map[string]any{"sub": []string{"telemetry/dev-1/#"}}))
	if r := narrow.request(t, map[string]any{"op": "sub", "topic": "#"}, 4); r["code"] != "forbidden" || !strings.Contains(r["reason"].(string), `sub: not allowed on "#"`) {
		t.Fatalf("sub # with telemetry/dev-1/# only: %v", r)
	}
	if r := narrow.request(t, map[string]any{"op": "sub", "topic": "telemetry/dev-1/+"}, 5); r["op"] != "ack" {
		t.Fatalf("a narrower filter: %v", r)
	}
}

// A template value of +, #, a/b, $SYS or empty cannot widen a grant: the
// rule drops, and the device may do nothing with it.
func TestUnsafeTemplateValues(t *testing.T) {
	j, _ := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	url := startPermBroker(t, j, nil)
	grant := map[string]any{"pub": []string{"telemetry/{sub}/temp", "site/{claim:site}/x"}, "sub": []string{"telemetry/{sub}/#"}}
	for _, sub := range []string{"+", "#", "a/b", "$SYS", "x\x00y"} {
		c := dialToken(t, url, deviceToken(t, sub, grant))
		for i, topic := range []string{"telemetry/a/temp", "telemetry/+/temp", "telemetry/#", "telemetry/a/b/temp"} {
			op := "pub"
			if strings.ContainsAny(topic, "+#") {
				op = "sub"
			}
			f := map[string]any{"op": op, "topic": topic, "data": 1}
			if r := c.request(t, f, 10+i); r["op"] == "ack" {
				t.Errorf("subject %q: %s %s allowed", sub, op, topic)
			}
		}
	}
	// an empty claim value likewise
	tok := sign(t, jwt.SigningMethodHS256, secret1, jwt.MapClaims{"sub": "d", "site": "", "exp": time.Now().Add(time.Hour).Unix(), "ferry": grant})
	c := dialToken(t, url, tok)
	if r := c.request(t, map[string]any{"op": "pub", "topic": "site//x", "data": 1}, 20); r["op"] == "ack" {
		t.Error("empty claim widened the grant")
	}
}

// A token without a ferry claim gets what the ACL grants its subject
// (globs on the identity); none granted, nothing allowed.
func TestACLByIdentity(t *testing.T) {
	j, _ := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	url := startPermBroker(t, j, []broker.ACLEntry{
		{Identity: "dev-*", Permissions: broker.Permissions{Pub: broker.PermissionLists{Allow: []string{"telemetry/{sub}/#"}}}},
		{Identity: "*", Permissions: broker.Permissions{Sub: broker.PermissionLists{Allow: []string{"public/#"}}}},
	})
	dev := dialToken(t, url, deviceToken(t, "dev-9", nil))
	if r := dev.request(t, map[string]any{"op": "pub", "topic": "telemetry/dev-9/t", "data": 1}, 1); r["op"] != "ack" {
		t.Fatalf("dev-9 own telemetry: %v", r)
	}
	if r := dev.request(t, map[string]any{"op": "sub", "topic": "public/#"}, 2); r["op"] != "ack" {
		t.Fatalf("dev-9 public: %v", r)
	}
	other := dialToken(t, url, deviceToken(t, "dashboard", nil))
	if r := other.request(t, map[string]any{"op": "pub", "topic": "telemetry/dashboard/t", "data": 1}, 3); r["code"] != "forbidden" {
		t.Fatalf("dashboard pub: %v", r)
	}
	// its own claim replaces the ACL
	own := dialToken(t, url, deviceToken(t, "dev-9", map[string]any{"pub": []string{"x"}}))
	if r := own.request(t, map[string]any{"op": "pub", "topic": "telemetry/dev-9/t", "data": 1}, 4); r["code"] != "forbidden" {
		t.Fatalf("claim did not replace the ACL: %v", r)
	}
}

// A ferry claim that is not valid refuses the token with 401.
func TestInvalidFerryClaim(t *testing.T) {
	j, _ := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	url := startPermBroker(t, j, nil)
	for _, claim := range []any{"everything", map[string]any{"pub": 7}, map[string]any{"pub": []string{"a/#/b"}}, map[string]any{"pub": []string{"a/{unknown}"}}} {
		code, body, _ := upgrade(t, url, deviceToken(t, "d", claim))
		if code != 401 || !strings.Contains(body, "invalid") {
			t.Errorf("ferry claim %v: %d %q", claim, code, body)
		}
	}
}
