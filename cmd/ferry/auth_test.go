package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil"
)

// The loopback check that decides whether --allow-anonymous is needed.
func TestLoopback(t *testing.T) {
	for listen, want := range map[string]bool{
		"localhost:7420": true, "127.0.0.1:7420": true, "127.9.0.1:1": true, "[::1]:7420": true,
		":7420": false, "0.0.0.0:7420": false, "[::]:7420": false, "10.0.0.1:7420": false, "example.com:7420": false, "nonsense": false,
	} {
		if got := loopback(listen); got != want {
			t.Errorf("loopback(%q) = %v", listen, got)
		}
	}
	// with authentication or --allow-anonymous, any address may be used
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:7420", "--allow-anonymous"},
		{"--listen", "0.0.0.0:7420", "--jwt-secret-file", writeSecret(t)},
	} {
		if _, err := parseServe(args, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func writeSecret(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte("a-secret-of-at-least-16-bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// hs256 mints a token the way any JWT library would.
func hs256(secret string, claims map[string]any) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	c, _ := json.Marshal(claims)
	msg := h + "." + enc.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(m.Sum(nil))
}

// ferry serve with a secret file: a Python websockets client (not ours)
// with a token in its Authorization header publishes and receives; a
// request without one gets 401 with the reason.
func TestServeJWT(t *testing.T) {
	secret := "a-secret-of-at-least-16-bytes"
	p := startFerry(t, "--jwt-secret-file", writeSecret(t))
	code, body, h := testutil.Upgrade(t, p.url, nil)
	if code != 401 || h.Get("WWW-Authenticate") != `Bearer realm="ferry"` || !strings.Contains(body, "no credential") {
		t.Fatalf("no token: %d %q %q", code, h.Get("WWW-Authenticate"), body)
	}

	py := pythonWithWebsockets(t)
	tok := hs256(secret, map[string]any{"sub": "dev-17", "exp": time.Now().Add(time.Hour).Unix(),
		"ferry": map[string]any{"pub": []string{"t/#"}, "sub": []string{"t/#"}}})
	script := `
import asyncio, json, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1], extra_headers={"Authorization": "Bearer " + sys.argv[2]}) as ws:
        await ws.send(json.dumps({"op": "sub", "topic": "t/#", "id": 1}))
        print(await ws.recv())
        await ws.send(json.dumps({"op": "pub", "topic": "t/x", "data": "hi", "id": 2}))
        print(await ws.recv())
    try:
        async with websockets.connect(sys.argv[1], extra_headers={"Authorization": "Bearer " + sys.argv[2] + "x"}):
            print("connected with a bad token")
    except websockets.exceptions.InvalidStatusCode as e:
        print("refused", e.status_code)
asyncio.run(main())
`
	out, err := exec.Command(py, "-c", script, p.url, tok).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{`{"op":"ack","id":1}`, `"data":"hi"`, "refused 401"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("python output lacks %s:\n%s", want, out)
		}
	}
	// the logs, read once the process has ended (and its stderr with it)
	_ = p.cmd.Process.Kill()
	p.done <- <-p.done // for the cleanup
	if strings.Contains(p.logs.String(), tok) {
		t.Fatal("the token appears in the logs")
	}
}

// ferry token mints what ferry serve accepts: a device token with a {sub}
// grant, and a dashboard token without permissions that gets the ACL's.
func TestTokenCommandAndACL(t *testing.T) {
	secretFile := writeSecret(t)
	mint := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(ferryBinary(t), append([]string{"token", "--secret-file", secretFile}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ferry token %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	device := mint("--sub", "dev-17", "--pub", "telemetry/{sub}/#", "--ttl", "10m")
	dashboard := mint("--sub", "dash-1")
	acl := filepath.Join(t.TempDir(), "acl.json")
	if err := os.WriteFile(acl, []byte(`[{"identity": "dash-*", "sub": ["telemetry/+/#"]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, "--jwt-secret-file", secretFile, "--acl", acl)
	py := pythonWithWebsockets(t)
	script := `
import asyncio, json, sys, websockets
async def main():
    url, dev, dash = sys.argv[1:4]
    async with websockets.connect(url, extra_headers={"Authorization": "Bearer " + dash}) as d, \
               websockets.connect(url + "?token=" + dev) as v:
        await d.send(json.dumps({"op": "sub", "topic": "telemetry/+/#", "id": 1}))
        print("dash sub", await d.recv())
        await d.send(json.dumps({"op": "pub", "topic": "telemetry/dash-1/x", "data": 1, "id": 2}))
        print("dash pub", await d.recv())
        await v.send(json.dumps({"op": "pub", "topic": "telemetry/dev-18/temp", "data": 1, "id": 3}))
        print("dev pub other", await v.recv())
        await v.send(json.dumps({"op": "pub", "topic": "telemetry/dev-17/temp", "data": 21.5, "id": 4}))
        print("dev pub own", await v.recv())
        print("dash got", await d.recv())
asyncio.run(main())
`
	out, err := exec.Command(py, "-c", script, p.url, device, dashboard).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{
		`dash sub {"op":"ack","id":1}`,
		`dash pub {"op":"err","id":2,"code":"forbidden"`,
		`dev pub other {"op":"err","id":3,"code":"forbidden"`,
		`dev pub own {"op":"ack","id":4}`,
		`dash got {"op":"msg","topic":"telemetry/dev-17/temp","data":21.5}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("python output lacks %s:\n%s", want, out)
		}
	}
	var errb strings.Builder
	if code := run([]string{"serve", "--listen", "127.0.0.1:0", "--jwt-secret-file", secretFile, "--acl", writeFile(t, `[{"identity": "x", "pub": ["a/#/b"]}]`)}, io.Discard, &errb); code != 2 || !strings.Contains(errb.String(), "--acl") {
		t.Fatalf("invalid ACL: exit %d %q", code, errb.String())
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
