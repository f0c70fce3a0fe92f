package main

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// With a client that is not ours (Python websockets): a connection that
// refreshes its token in-band outlives the old token, a connection that
// does not is closed with 4001, a refresh that narrows the permissions
// removes a subscription, and a refresh for another subject is refused.
func TestServeRefreshFromPython(t *testing.T) {
	secret := "a-secret-of-at-least-16-bytes"
	p := startFerry(t, "--jwt-secret-file", writeSecret(t))
	py := pythonWithWebsockets(t)
	claims := func(sub string, ttl time.Duration, subs ...string) string {
		return hs256(secret, map[string]any{"sub": sub, "exp": time.Now().Add(ttl).Unix(),
			"ferry": map[string]any{"pub": []string{"#"}, "sub": subs}})
	}
	short := claims("dev-1", time.Second, "t/#", "x/#")
	fresh := claims("dev-1", time.Hour, "t/#")
	other := claims("dev-2", time.Hour, "#")
	script := `
import asyncio, json, sys, websockets
async def main():
    url, short, fresh, other = sys.argv[1:5]
    hdr = lambda tok: {"Authorization": "Bearer " + tok}
    async with websockets.connect(url, extra_headers=hdr(short)) as kept, \
               websockets.connect(url, extra_headers=hdr(short)) as control:
        for i, f in enumerate(["t/#", "x/#"]):
            await kept.send(json.dumps({"op": "sub", "topic": f, "id": i + 1}))
            print("sub", await kept.recv())
        await kept.send(json.dumps({"op": "auth", "token": other, "id": 3}))
        print("other", await kept.recv())
        await kept.send(json.dumps({"op": "auth", "token": fresh, "id": 4}))
        print("revoked", await kept.recv())
        print("refresh", await kept.recv())
        try:
            await asyncio.wait_for(control.recv(), 30)
        except websockets.exceptions.ConnectionClosed as e:
            print("control closed", e.code, e.reason)
        await kept.send(json.dumps({"op": "pub", "topic": "t/a", "data": 1, "id": 5}))
        print("after", await kept.recv(), await kept.recv())
asyncio.run(main())
`
	out, err := exec.Command(py, "-c", script, p.url, short, fresh, other).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	for _, want := range []string{
		`sub {"op":"ack","id":2}`,
		`other {"op":"err","id":3,"code":"unauthorized","reason":"auth: the token's subject is not the connection's`,
		`revoked {"op":"err","topic":"x/#","code":"forbidden"`,
		`refresh {"op":"ack","id":4}`,
		"control closed 4001 token expired",
		`{"op":"ack","id":5}`, // the connection outlived the short token
		`{"op":"msg","topic":"t/a","data":1}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("python output lacks %s:\n%s", want, out)
		}
	}
}
