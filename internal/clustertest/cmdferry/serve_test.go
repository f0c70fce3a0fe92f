// Package cmdferry runs `ferry serve` processes joined through a NATS
// server in the test process (cmd/ferry's other tests need no NATS and
// stay with it).
package cmdferry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/clustertest"
)

// ferryBinary builds cmd/ferry into the test's temporary directory.
func ferryBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ferry")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ferry-io/ferry/cmd/ferry").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// startFerry runs `ferry serve` on a free port of 127.0.0.1 until the end
// of the test and returns its WebSocket URL.
func startFerry(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	found := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		urlRe := regexp.MustCompile(`url=(ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := urlRe.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	select {
	case u := <-found:
		return u
	case err := <-done:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("ferry exited: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("ferry did not report its address")
	}
	return ""
}

// TestServeCluster runs two ferry processes joined through a NATS server
// (in the test process): a message published on one reaches a subscriber
// on the other, and /healthz reports the cluster.
func TestServeCluster(t *testing.T) {
	ns := clustertest.StartNATS(t, clustertest.NATSOptions{})
	bin := ferryBinary(t)
	a := startFerry(t, bin, "--nats", ns.ClientURL())
	b := startFerry(t, bin, "--nats", ns.ClientURL())

	ctx := context.Background()
	sub, err := client.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 100)
	if _, err := sub.Subscribe(ctx, "c/+", func(m *client.Message) error { got <- string(m.Data); return nil }); err != nil {
		t.Fatal(err)
	}
	pub, err := client.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	deadline := time.Now().Add(20 * time.Second)
	for received := false; !received; {
		if time.Now().After(deadline) {
			t.Fatal("no cross-node delivery")
		}
		if err := pub.Publish(ctx, "c/x", "hello"); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			received = v == `"hello"`
		case <-time.After(100 * time.Millisecond):
		}
	}
	resp, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(a, "ws"), "/ws") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var health struct {
		Status string
		Stats  struct {
			Cluster *struct {
				Connected bool   `json:"connected"`
				Sent      uint64 `json:"sent"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&health); err != nil {
		t.Fatal(err)
	}
	if health.Status != "ok" || health.Stats.Cluster == nil || !health.Stats.Cluster.Connected || health.Stats.Cluster.Sent == 0 {
		t.Fatalf("healthz: %+v %+v", health, health.Stats.Cluster)
	}
}
