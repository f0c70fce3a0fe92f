package load

import (
	"context"
	"testing"
	"time"
)

// testBins builds ferry and natsd into the test's temporary directory, or
// skips the test outside the module.
func testBins(t *testing.T) Binaries {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Skip(err)
	}
	bins, err := Build(root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bins
}

// TestSmoke runs small fanout, fanin and cluster (one node, then two joined
// by a natsd child) scenarios against ferry brokers in child processes
// (both codecs) and requires every message to arrive. The
// scenarios stop their broker before returning; Pdeathsig ends it should
// the test binary die first.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes; skipped with -short")
	}
	bins := testBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Bins: bins, Stall: 5 * time.Second}
	for _, tg := range Targets[:2] {
		for _, r := range []Result{
			Fanout(ctx, cfg, tg, 20, 300, 128),
			Fanin(ctx, cfg, tg, 50, 40, 64),
			Cluster(ctx, cfg, tg, 1, 10, 200, 128),
			Cluster(ctx, cfg, tg, 2, 10, 200, 128),
		} {
			t.Logf("%s %s %s: %.0f %s, %.2f%% delivered, p99 %.2f ms", r.Target, r.Scenario, r.Case, r.Rate, r.RateUnit, r.DeliveredPct, r.P99ms)
			if r.Err != "" {
				t.Errorf("%s %s: %s", r.Target, r.Scenario, r.Err)
				continue
			}
			if r.Delivered != r.Expected || r.Expected == 0 {
				t.Errorf("%s %s: delivered %d of %d (%s)", r.Target, r.Scenario, r.Delivered, r.Expected, r.Note)
			}
			if r.LostConns > 0 || r.SlowNotices > 0 || r.DroppedNote > 0 {
				t.Errorf("%s %s: %d connections lost, %d slow-consumer notices, %d drops", r.Target, r.Scenario, r.LostConns, r.SlowNotices, r.DroppedNote)
			}
			if r.Scenario == "cluster" && r.Nodes == 2 && r.NATSRSS == 0 {
				t.Errorf("%s %s: no NATS RSS", r.Target, r.Scenario)
			}
			if r.Rate <= 0 {
				t.Errorf("%s %s: rate %v", r.Target, r.Scenario, r.Rate)
			}
		}
	}
}

func TestSubject(t *testing.T) {
	for in, want := range map[string]string{"telemetry/+/temp": "telemetry.*.temp", "a/#": "a.>", "bench/fanout": "bench.fanout"} {
		if got := Subject(in); got != want {
			t.Errorf("Subject(%q) = %q, want %q", in, got, want)
		}
	}
}
