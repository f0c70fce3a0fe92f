package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
)

const (
	devToken  = "device-17-token-stored-as-its-hash"
	dashToken = "dashboard-token-stored-in-plain"
)

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func writeTokens(t *testing.T) string {
	t.Helper()
	return writeFile(t, `[
  {"identity": "dev-17", "sha256": "`+sha256Hex(devToken)+`", "pub": ["telemetry/{sub}/#"], "sub": ["cmd/{sub}/+"], "limits": {"pub_rate": 50}},
  {"identity": "dash-1", "token": "`+dashToken+`"}
]`)
}

// ferry serve --tokens beside --jwt-secret-file: a Python websockets
// client (not ours) connects with static tokens in its Authorization
// header, a hashed one with its own permissions and a plain one with the
// ACL's, and the permissions hold; a JWT still connects; a token neither
// knows gets 401 "unknown token".
func TestServeStaticTokens(t *testing.T) {
	acl := filepath.Join(t.TempDir(), "acl.json")
	if err := os.WriteFile(acl, []byte(`[{"identity": "dash-*", "sub": ["telemetry/+/#"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--tokens", writeTokens(t), "--acl", acl, "--jwt-secret-file", writeSecret(t))
	code, body, h := testutil.Upgrade(t, p.url, http.Header{"Authorization": {"Bearer no-such-token-anywhere"}})
	if code != 401 || body != "ferry: invalid token: unknown token" || !strings.Contains(h.Get("WWW-Authenticate"), `error_description="unknown token"`) {
		t.Fatalf("unknown token: %d %q %q", code, body, h.Get("WWW-Authenticate"))
	}
	jwtToken := hs256("a-secret-of-at-least-16-bytes", map[string]any{"sub": "dev-1", "exp": time.Now().Add(time.Hour).Unix()})
	if code, body, _ := testutil.Upgrade(t, p.url, http.Header{"Authorization": {"Bearer " + jwtToken}}); code != 101 {
		t.Fatalf("a JWT beside static tokens: %d %q", code, body)
	}
	if code, body, _ := testutil.Upgrade(t, p.url+"?token="+devToken, nil); code != 101 {
		t.Fatalf("a static token in the query: %d %q", code, body)
	}

	py := pythonWithWebsockets(t)
	script := `
import asyncio, json, sys, websockets
async def main():
    url, dev, dash = sys.argv[1:4]
    async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + dash}) as d, \
               websockets.connect(url, extra_headers={"Authorization": "Bearer " + dev}) as v:
        await d.send(json.dumps({"op": "sub", "topic": "telemetry/+/#", "id": 1}))
        print("dash sub", await d.recv())
        await d.send(json.dumps({"op": "pub", "topic": "telemetry/dash-1/x", "data": 1, "id": 2}))
        print("dash pub", await d.recv())
        await v.send(json.dumps({"op": "sub", "topic": "telemetry/+/#", "id": 3}))
        print("dev sub all", await v.recv())
        await v.send(json.dumps({"op": "pub", "topic": "telemetry/dev-18/temp", "data": 1, "id": 4}))
        print("dev pub other", await v.recv())
        await v.send(json.dumps({"op": "pub", "topic": "telemetry/dev-17/temp", "data": 21.5, "id": 5}))
        print("dev pub own", await v.recv())
        print("dash got", await d.recv())
    try:
        async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + dev + "x"}):
            print("connected with a wrong token")
    except websockets.exceptions.InvalidStatusCode as e:
        print("refused", e.status_code)
asyncio.run(main())
`
	out, err := exec.Command(py, "-c", script, p.url, devToken, dashToken).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{
		`dash sub {"op":"ack","id":1}`,
		`dash pub {"op":"err","id":2,"code":"forbidden"`,
		`dev sub all {"op":"err","id":3,"code":"forbidden"`,
		`dev pub other {"op":"err","id":4,"code":"forbidden"`,
		`dev pub own {"op":"ack","id":5}`,
		`dash got {"op":"msg","topic":"telemetry/dev-17/temp","data":21.5}`,
		"refused 401",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("python output lacks %s:\n%s", want, out)
		}
	}
	_ = p.cmd.Process.Kill()
	p.done <- <-p.done // for the cleanup
	for _, tok := range []string{devToken, dashToken} {
		if strings.Contains(p.logs.String(), tok) {
			t.Fatal("a token appears in the logs")
		}
	}
}

func jwkJSON(t *testing.T, pub any, kid string) json.RawMessage {
	t.Helper()
	k, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(k.Marshal())
	return b
}

func signWithKid(t *testing.T, m jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims{"sub": "dev-1", "exp": time.Now().Add(time.Hour).Unix(),
		"ferry": map[string]any{"pub": []string{"t/#"}}})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ferry serve --jwks FILE: tokens signed with the set's RSA and Ed25519
// keys connect; an unknown kid is refused, saying so; a key added to the
// file (replaced by a rename) is taken for the first token that names it.
func TestServeJWKSFile(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	newPub, newKey, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	f := filepath.Join(dir, "jwks.json")
	write := func(keys ...json.RawMessage) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(f+".new", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f+".new", f); err != nil {
			t.Fatal(err)
		}
	}
	write(jwkJSON(t, &rsaKey.PublicKey, "rsa-1"), jwkJSON(t, edPub, "ed-1"))
	p := startFerry(t, "--jwks", f)
	upgrade := func(tok string) (int, string) {
		code, body, _ := testutil.Upgrade(t, p.url, http.Header{"Authorization": {"Bearer " + tok}})
		return code, body
	}
	if code, body := upgrade(signWithKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-1")); code != 101 {
		t.Fatalf("RS256: %d %q", code, body)
	}
	if code, body := upgrade(signWithKid(t, jwt.SigningMethodEdDSA, edKey, "ed-1")); code != 101 {
		t.Fatalf("EdDSA: %d %q", code, body)
	}
	if code, body := upgrade(signWithKid(t, jwt.SigningMethodEdDSA, newKey, "ed-2")); code != 401 || body != `ferry: invalid token: unknown key id (kid) 'ed-2'` {
		t.Fatalf("unknown kid: %d %q", code, body)
	}
	if code, body := upgrade(hs256("any-secret-at-all-of-some-length", map[string]any{"sub": "x", "exp": time.Now().Add(time.Hour).Unix()})); code != 401 || !strings.Contains(body, "signing algorithm not accepted") {
		t.Fatalf("HS256 with only a JWKS: %d %q", code, body)
	}
	write(jwkJSON(t, &rsaKey.PublicKey, "rsa-1"), jwkJSON(t, edPub, "ed-1"), jwkJSON(t, newPub, "ed-2"))
	if code, body := upgrade(signWithKid(t, jwt.SigningMethodEdDSA, newKey, "ed-2")); code != 101 {
		t.Fatalf("the added key: %d %q", code, body)
	}
}

// The flags' errors, and what they allow.
func TestAuthFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/jwks.json"
	ln.Close()
	badTokens := writeFile(t, `[{"identity": "a", "token": "`+dashToken+`"}, {"identity": "b", "sha256": "abc"}]`)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tokens", "/nonexistent/tokens.json"}, []string{"--tokens", "/nonexistent/tokens.json"}},
		{[]string{"--tokens", badTokens}, []string{"--tokens", badTokens, `entry 2: key "sha256"`}},
		{[]string{"--jwks", down}, []string{"--jwks", "fetch failed", down}},
		{[]string{"--jwks", "http://idp.example.com/jwks"}, []string{"--jwks", "use https"}},
		{[]string{"--jwks", "/nonexistent/jwks.json"}, []string{"--jwks", "/nonexistent/jwks.json"}},
		{[]string{"--jwks", writeFile(t, `{"keys": []}`)}, []string{"--jwks", "no RSA, ECDSA or Ed25519 signing key"}},
		{[]string{"--tokens", writeTokens(t), "--jwt-issuer", "fleet"}, []string{"--jwt-audience and --jwt-issuer need", "--jwks"}},
		{[]string{"--acl", writeFile(t, `[]`)}, []string{"--acl needs tokens to verify or client certificates: --tokens"}},
		{[]string{"--listen", "0.0.0.0:0"}, []string{"--allow-anonymous", "--tokens", "--jwks"}},
	} {
		var errb bytes.Buffer
		code := run(append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...), io.Discard, &errb)
		for _, w := range tc.want {
			if code != 2 || !strings.Contains(errb.String(), w) {
				t.Errorf("serve %v: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, errb.String(), w)
			}
		}
	}

	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	b, _ := json.Marshal(map[string]any{"keys": []json.RawMessage{jwkJSON(t, edPub, "ed-1")}})
	jwksFile := writeFile(t, string(b))
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:7420", "--tokens", writeTokens(t)},
		{"--listen", "0.0.0.0:7420", "--jwks", jwksFile, "--jwt-audience", "ferry"},
		{"--tokens", writeTokens(t), "--acl", writeFile(t, `[{"identity": "dash-*", "sub": ["#"]}]`)},
		{"--tokens", writeTokens(t), "--jwks", jwksFile, "--jwt-secret-file", writeSecret(t)},
	} {
		cfg, err := parseServe(args, io.Discard)
		if err != nil || cfg.opts.Authenticate == nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
