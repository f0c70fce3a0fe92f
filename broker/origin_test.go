package broker_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
)

// upgrade sends a WebSocket upgrade request with origin (none if empty)
// and returns the status and body.
func upgrade(t *testing.T, url, origin string) (int, string) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	code, body, _ := testutil.Upgrade(t, url, h)
	return code, body
}

// By default a browser page may connect only from the broker's own host and
// port; programs, which send no Origin, always may.
func TestOriginSameHostDefault(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws") // 127.0.0.1:port
	port := host[strings.LastIndex(host, ":")+1:]
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", 101},
		{"http://" + host, 101},
		{"https://" + host, 101},
		{"HTTP://" + strings.ToUpper(host), 101},
		{"http://localhost:" + port, 403}, // another name: another site as far as the browser is concerned
		{"http://127.0.0.1", 403},         // port 80: not the broker's
		{"http://evil.example:" + port, 403},
		{"null", 403},
		{"not a url", 403},
	} {
		code, body := upgrade(t, url, tc.origin)
		if code != tc.want {
			t.Errorf("Origin %q: status %d %q, want %d", tc.origin, code, body, tc.want)
		}
		if code == 403 && !strings.Contains(body, "not allowed") {
			t.Errorf("Origin %q: 403 without a reason: %q", tc.origin, body)
		}
	}
}

func TestAllowedOrigins(t *testing.T) {
	_, url := startBroker(t, broker.Options{AllowedOrigins: []string{"https://app.example.com", "https://*.example.org", "http://dev.local:8080"}})
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{"", 101},
		{"https://app.example.com", 101},
		{"https://app.example.com:443", 101},
		{"http://app.example.com", 403},       // scheme compared
		{"https://app.example.com:8443", 403}, // port compared
		{"https://a.example.org", 101},
		{"https://a.b.example.org", 101}, // any depth
		{"https://example.org", 403},     // not the bare domain
		{"https://evilexample.org", 403},
		{"http://dev.local:8080", 101},
		{"http://dev.local", 403},
		{"http://" + strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws"), 403}, // the list replaces the same-host rule
		{"null", 403},
	} {
		if code, body := upgrade(t, url, tc.origin); code != tc.want {
			t.Errorf("Origin %q: status %d %q, want %d", tc.origin, code, body, tc.want)
		}
	}
	_, all := startBroker(t, broker.Options{AllowedOrigins: []string{"*"}})
	if code, _ := upgrade(t, all, "https://anything.example"); code != 101 {
		t.Errorf("with *: status %d", code)
	}
}

func TestAllowedOriginsInvalid(t *testing.T) {
	for _, bad := range []string{"example.com", "https://", "https://a.example.com/path", "https://*", "https://a.*.com", "ftp://x?y=1"} {
		if _, err := broker.New(broker.Options{AllowedOrigins: []string{bad}}); err == nil || !strings.Contains(err.Error(), "AllowedOrigins") {
			t.Errorf("AllowedOrigins %q: err %v, want one naming the option", bad, err)
		}
	}
}

func TestMaxSessionsNegative(t *testing.T) {
	if _, err := broker.New(broker.Options{MaxSessions: -1}); err == nil || !strings.Contains(err.Error(), "MaxSessions") {
		t.Fatalf("MaxSessions -1: %v", err)
	}
}
