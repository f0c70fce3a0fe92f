// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"net"
	"net/http"
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
