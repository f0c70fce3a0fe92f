// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Eventually polls cond every poll until it holds, or fails t after
// timeout, naming what it waited for.
func Eventually(t testing.TB, timeout, poll time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(poll)
	}
}

// Serve serves h on a free port of 127.0.0.1 with a server of its own and
// returns the address ("127.0.0.1:port") and the server, for the caller to
// shut down.
func Serve(t testing.TB, h http.Handler) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), srv
}

// HeapBound checks, every so often, that the live heap has not grown by
// more than a bound since it was made: for fuzz targets, whose inputs must
// not make the process keep memory.
type HeapBound struct {
	base, bound uint64
	n           int
}

// NewHeapBound records the live heap now (after a collection).
func NewHeapBound(bound uint64) *HeapBound {
	return &HeapBound{base: liveHeap(), bound: bound}
}

// Check fails t if the live heap grew past the bound. It collects garbage
// to measure, so it measures only on every 64th call (and the first).
func (h *HeapBound) Check(t testing.TB) {
	t.Helper()
	h.n++
	if h.n%64 != 1 {
		return
	}
	if live := liveHeap(); live > h.base+h.bound {
		t.Fatalf("live heap %d MiB, %d MiB more than at the start", live>>20, (live-h.base)>>20)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Upgrade sends a WebSocket upgrade request to url (ws:// or http://) with
// the extra headers h, and returns the status, the body (empty for a 101,
// whose body would be the connection: it is closed) and the response's
// headers.
func Upgrade(t testing.TB, url string, h http.Header) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", "http"+strings.TrimPrefix(strings.TrimPrefix(url, "http"), "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, "", resp.Header
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body)), resp.Header
}
