// Package cmdferry runs `ferry serve` processes joined through a NATS
// server in the test process (cmd/ferry's other tests need no NATS and
// stay with it).
package cmdferry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ferryBinary builds cmd/ferry once per test run.
func ferryBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ferry-clustertest"); buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "ferry"), "github.com/ferry-io/ferry/cmd/ferry").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "ferry")
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

// health is the JSON of /healthz.
type health struct {
	Status string
	Stats  struct {
		Cluster *struct {
			Connected bool   `json:"connected"`
			Sent      uint64 `json:"sent"`
			Missing   int    `json:"missing"`
		}
	}
}

// getHealth reads /healthz of the ferry serving wsURL.
func getHealth(t *testing.T, wsURL string) health {
	t.Helper()
	resp, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(wsURL, "ws"), "/ws") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
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
	h := getHealth(t, a)
	if h.Status != "ok" || h.Stats.Cluster == nil || !h.Stats.Cluster.Connected || h.Stats.Cluster.Sent == 0 {
		t.Fatalf("healthz: %+v %+v", h, h.Stats.Cluster)
	}
}

// TestServeSubscriptionRefusedByNATS: NATS refuses the subscription of a
// client's filter (permissions): the client's sub gets err internal naming
// the refusal rather than a subscription that would silently miss the other
// nodes' messages; the connection, and its other subscriptions, go on.
func TestServeSubscriptionRefusedByNATS(t *testing.T) {
	ns := clustertest.StartNATS(t, clustertest.NATSOptions{Users: []*server.User{{Username: "ferry", Password: "pw",
		Permissions: &server.Permissions{Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"ferry.secret.>"}}}}}})
	a := startFerry(t, ferryBinary(t), "--nats", ns.ClientURL(), "--nats-user", "ferry", "--nats-password", "pw")
	ctx := context.Background()
	c, err := client.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Subscribe(ctx, "secret/x", func(*client.Message) error { return nil })
	var cerr *client.Error
	if !errors.As(err, &cerr) || cerr.Code != "internal" || !strings.Contains(cerr.Reason, "NATS refused") {
		t.Fatalf("subscribe to a refused filter: %v", err)
	}
	if _, err := c.Subscribe(ctx, "open/x", func(*client.Message) error { return nil }); err != nil {
		t.Fatalf("subscribe after the refusal: %v", err)
	}
	// the refused filter's interest is taken back in the background
	testutil.Eventually(t, 20*time.Second, 10*time.Millisecond, "health ok, nothing missing", func() bool {
		h := getHealth(t, a)
		return h.Status == "ok" && h.Stats.Cluster.Missing == 0
	})
}
