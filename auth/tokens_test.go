package auth_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/golang-jwt/jwt/v5"
)

const (
	plainToken  = "plain-text-token-for-a-script"
	hashedToken = "a-device-token-only-its-hash-is-stored"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func tokenTable(t *testing.T) *auth.Tokens {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens.json")
	if err := os.WriteFile(f, []byte(`[
  {"identity": "dev-17", "sha256": "`+strings.ToUpper(sha256Hex(hashedToken))+`",
   "pub": ["telemetry/{sub}/#"], "sub": {"allow": ["cmd/{sub}/+"], "deny": ["cmd/{sub}/reboot"]},
   "limits": {"pub_rate": 5, "pub_burst": 10, "max_subs": 3}},
  {"identity": "script", "token": "`+plainToken+`"}
]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tt, err := auth.LoadTokens(f)
	if err != nil {
		t.Fatal(err)
	}
	if tt.Len() != 2 {
		t.Fatalf("%d tokens", tt.Len())
	}
	return tt
}

func TestTokensVerify(t *testing.T) {
	tt := tokenTable(t)
	id, err := tt.Verify(hashedToken)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "dev-17" || id.Permissions == nil || id.Permissions.Pub.Allow[0] != "telemetry/{sub}/#" ||
		id.Permissions.Sub.Deny[0] != "cmd/{sub}/reboot" || !id.Expires.IsZero() || id.Claims != nil {
		t.Fatalf("identity %+v", id)
	}
	if *id.Limits != (broker.Limits{PubRate: 5, PubBurst: 10, MaxSubscriptions: 3}) {
		t.Fatalf("limits %+v", id.Limits)
	}
	// the caller may keep and change what it got: the next one is fresh
	id.Permissions.Pub.Allow[0], id.Limits.PubRate, id.Subject = "#", 1000, "root"
	again, _ := tt.Verify(hashedToken)
	if again.Permissions.Pub.Allow[0] != "telemetry/{sub}/#" || again.Limits.PubRate != 5 || again.Subject != "dev-17" {
		t.Fatalf("a changed identity changed the table: %+v", again)
	}

	id, err = tt.Verify(plainToken)
	if err != nil || id.Subject != "script" || id.Permissions != nil || id.Limits != nil {
		t.Fatalf("plain token: %+v %v", id, err)
	}
	for _, tok := range []string{"", plainToken + "x", sha256Hex(hashedToken), strings.ToUpper(plainToken)} {
		if _, err := tt.Verify(tok); !errors.Is(err, auth.ErrUnknownToken) {
			t.Errorf("Verify(%q): %v, want ErrUnknownToken", tok, err)
		}
	}
}

func TestParseTokensErrors(t *testing.T) {
	h := sha256Hex(hashedToken)
	for _, tc := range []struct {
		file, want string
	}{
		{`{"identity": "a"}`, "want a JSON list"},
		{`[{"identity": "a", "token": "` + plainToken + `", "pubs": ["x"]}]`, `entry 1: unknown key "pubs"`},
		{`[{"token": "` + plainToken + `"}]`, `entry 1: key "identity": missing or empty`},
		{`[{"identity": "", "token": "` + plainToken + `"}]`, `key "identity": missing or empty`},
		{`[{"identity": 7, "token": "` + plainToken + `"}]`, `key "identity": want a string`},
		{`[{"identity": "a"}]`, `no "token" and no "sha256"`},
		{`[{"identity": "a", "token": "` + plainToken + `", "sha256": "` + h + `"}]`, `both "token" and "sha256"`},
		{`[{"identity": "a", "sha256": "zz` + h[2:] + `"}]`, `key "sha256": not hex`},
		{`[{"identity": "a", "sha256": "` + h[:40] + `"}]`, `key "sha256": 40 hex digits`},
		{`[{"identity": "a", "sha256": "` + h + `  -"}]`, `key "sha256": not hex`},
		{`[{"identity": "a", "token": "short"}]`, `key "token": 5 bytes: at least 16`},
		{`[{"identity": "a", "token": " ` + plainToken + `"}]`, `key "token": starts or ends with white space`},
		{`[{"identity": "a", "sha256": "` + h + `"}, {"identity": "b", "token": "` + hashedToken + `"}]`, "entry 2: the same token as entry 1"},
		{`[{"identity": "a", "token": "` + plainToken + `", "pub": ["a/#/b"]}]`, "entry 1: perm: pub.allow[0]"},
		{`[{"identity": "a", "token": "` + plainToken + `", "sub": {"allow": ["x"], "dney": ["y"]}}]`, `key "sub"`},
		{`[{"identity": "a", "token": "` + plainToken + `", "sub": "x/#"}]`, `key "sub": perm: invalid rules: permissions must be a list`},
		{`[{"identity": "a", "token": "` + plainToken + `", "pub": ["site/{claim:site}/#"]}]`, "a static token has no claims"},
		{`[{"identity": "a", "token": "` + plainToken + `", "limits": {"pub_rate": -1}}]`, `key "limits": pub_rate: -1 is negative`},
		{`[{"identity": "a", "token": "` + plainToken + `", "limits": {"pub_rat": 1}}]`, `key "limits": unknown key "pub_rat"`},
		{`[{"identity": "a", "token": "` + plainToken + `", "limits": {"max_subs": "50"}}]`, `key "limits": max_subs: want a whole number, not string`},
		{`[{"identity": "a", "token": "` + plainToken + `", "limits": [1]}]`, `key "limits": must be an object`},
	} {
		_, err := auth.ParseTokens([]byte(tc.file), "tokens.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "tokens.json") {
			t.Errorf("%s:\n  got %v\n  want an error naming tokens.json and %q", tc.file, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), plainToken) || strings.Contains(err.Error(), hashedToken)) {
			t.Errorf("the error repeats a token: %v", err)
		}
	}
	if _, err := auth.LoadTokens(filepath.Join(t.TempDir(), "none.json")); err == nil || !strings.Contains(err.Error(), "none.json") {
		t.Fatalf("missing file: %v", err)
	}
	if tt, err := auth.ParseTokens([]byte(`[]`), "empty"); err != nil || tt.Len() != 0 {
		t.Fatalf("an empty list: %v", err)
	}
}

// Static tokens first, then JWTs, over real sockets: the table's tokens
// connect with their permissions or the ACL's, a JWT falls through to the
// JWT verifier, a token neither knows gets 401 "unknown token".
func TestTokensChainOverRealSockets(t *testing.T) {
	tt := tokenTable(t)
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	_, url := startBroker(t, broker.Options{
		Authenticate: auth.Chain(tt.Authenticate, j.Authenticate),
		ACL:          []broker.ACLEntry{{Identity: "script", Permissions: broker.Permissions{Pub: broker.PermissionLists{Allow: []string{"jobs/#"}}}}},
	})
	for _, tc := range []struct {
		name, token string
		code        int
		why         string
	}{
		{"hashed static token", hashedToken, 101, ""},
		{"plain static token", plainToken, 101, ""},
		{"JWT", sign(t, jwt.SigningMethodHS256, secret1, valid("dev-1")), 101, ""},
		{"unknown token", "nobody-knows-this-token", 401, "unknown token"},
		{"a JWT with a bad signature is not an unknown token", sign(t, jwt.SigningMethodHS256, secret2, valid("dev-1")), 401, "signature invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, challenge := upgrade(t, url, tc.token)
			if code != tc.code || !strings.Contains(body, tc.why) {
				t.Fatalf("status %d %q, want %d with %q", code, body, tc.code, tc.why)
			}
			if code == 401 && !strings.Contains(challenge, tc.why) {
				t.Fatalf("WWW-Authenticate %q", challenge)
			}
		})
	}

	// the permissions hold: the device's own, the script's from the ACL
	dev := dialToken(t, url, hashedToken)
	script := dialToken(t, url, plainToken)
	for i, tc := range []struct {
		c     *wsConn
		frame map[string]any
		want  string // the reply's op, or its code
	}{
		{dev, map[string]any{"op": "pub", "topic": "telemetry/dev-17/t", "data": 1}, "ack"},
		{dev, map[string]any{"op": "pub", "topic": "telemetry/dev-18/t", "data": 1}, "forbidden"},
		{dev, map[string]any{"op": "sub", "topic": "cmd/dev-17/+"}, "forbidden"}, // overlaps the denied reboot
		{dev, map[string]any{"op": "sub", "topic": "cmd/dev-17/light"}, "ack"},
		{script, map[string]any{"op": "pub", "topic": "jobs/1", "data": 1}, "ack"},
		{script, map[string]any{"op": "pub", "topic": "telemetry/dev-17/t", "data": 1}, "forbidden"},
	} {
		r := tc.c.request(t, tc.frame, i+1)
		if got := r["op"]; got != tc.want && r["code"] != tc.want {
			t.Errorf("%v: %v, want %s", tc.frame, r, tc.want)
		}
	}

	// no credential at all: the missing-credential 401
	r, _ := http.NewRequest("GET", "/", nil)
	if _, err := auth.Chain(tt.Authenticate, j.Authenticate)(r); !errors.Is(err, broker.ErrNoCredential) {
		t.Fatalf("no credential: %v", err)
	}
}
