package auth_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
)

// chromium finds a headless browser; CI installs Debian's chromium.
func chromium(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium: .ci/run installs it")
	}
	t.Skip("no chromium on this machine (apt-get install chromium)")
	return ""
}

// page connects with the token as a subprotocol entry, subscribes,
// publishes and writes what happened into the page.
const page = `<!doctype html><html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
const log = s => { out.textContent += "\n" + s; };
const ws = new WebSocket(%q, ["ferry.v1.json", "ferry.bearer." + %q]);
ws.onopen = () => { log("OPEN " + ws.protocol); ws.send(JSON.stringify({op: "sub", topic: "dash/#", id: 1})); };
ws.onmessage = e => {
  const f = JSON.parse(e.data);
  log("FRAME " + e.data);
  if (f.op === "ack" && f.id === 1) ws.send(JSON.stringify({op: "pub", topic: "dash/t", data: {from: "browser"}, id: 2}));
  if (f.op === "msg") { log("RECEIVED " + JSON.stringify(f.data)); ws.close(1000); }
};
ws.onclose = e => {
  log("CLOSED " + e.code);
  fetch("/report", {method: "POST", body: out.textContent});
};
</script></body></html>`

// A real browser connects with its token in a ferry.bearer.* subprotocol
// entry (it cannot set headers), gets only the codec echoed, and receives
// a message; the same page with a bad token is refused.
func TestBrowserSubprotocolToken(t *testing.T) {
	bin := chromium(t)
	secret := []byte("a-browser-secret-of-32-bytes-012")
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret}})
	if err != nil {
		t.Fatal(err)
	}
	pages := http.NewServeMux()
	pageAddr, pageSrv := testutil.Serve(t, pages)
	defer pageSrv.Close()
	b, wsURL := startBroker(t, broker.Options{Authenticate: j.Authenticate, AllowedOrigins: []string{"http://" + pageAddr}})
	claims := valid("dashboard-1")
	claims["ferry"] = map[string]any{"pub": []string{"dash/#"}, "sub": []string{"dash/#"}}
	good := sign(t, jwt.SigningMethodHS256, secret, claims)
	for name, tok := range map[string]string{"good": good, "bad": good + "x"} {
		pages.HandleFunc("/"+name, func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, page, wsURL, base64.RawURLEncoding.EncodeToString([]byte(tok)))
		})
	}
	reports := make(chan string, 4)
	pages.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reports <- string(b)
	})
	// run opens path in headless Chromium and returns what the page
	// reported once its connection closed
	run := func(path string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir="+t.TempDir(), "http://"+pageAddr+path)
		if err := cmd.Start(); err != nil {
			t.Fatalf("chromium: %v", err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		select {
		case r := <-reports:
			return r
		case <-ctx.Done():
			t.Fatalf("the page %s reported nothing", path)
			return ""
		}
	}
	got := run("/good")
	for _, want := range []string{"OPEN ferry.v1.json", `RECEIVED {"from":"browser"}`, "CLOSED 1000"} {
		if !strings.Contains(got, want) {
			t.Fatalf("page lacks %q:\n%s", want, got)
		}
	}
	if got := run("/bad"); strings.Contains(got, "OPEN") || !strings.Contains(got, "CLOSED 1006") {
		t.Fatalf("a bad token was not refused:\n%s", got)
	}
	if n := b.Stats().AuthFailures; n != 1 {
		t.Fatalf("%d auth failures, want the bad page's 1", n)
	}
}
