package load

import (
	"context"
	"testing"
	"time"
)

// testBins builds ferry and natsd into the test's temporary directory, or
// skips the test outside the module; it finds mosquitto if installed.
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
	bins.Mosquitto = FindMosquitto()
	return bins
}

// TestSmoke runs small fanout, fanin, iot and cluster (one node, then two
// joined by a natsd child) scenarios against ferry brokers in child
// processes (both codecs) and requires every message to arrive. The
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
			IoT(ctx, cfg, tg, 50, time.Second, 500*time.Millisecond, 64),
			Cluster(ctx, cfg, tg, 1, 10, 200, 128),
			Cluster(ctx, cfg, tg, 2, 10, 200, 128),
		} {
			check(t, r, true)
		}
	}
}

// TestSmokeOthers runs small fanout, fanin and iot scenarios with the Go
// SDK's clients (ferry-sdk-json, ferry-sdk-msgpack) and against mosquitto
// (skipped when it is not installed). mosquitto must deliver everything;
// the SDK with its default options may drop (it is measured, not tested
// here): its drops are logged.
func TestSmokeOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts broker processes; skipped with -short")
	}
	bins := testBins(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := Config{Bins: bins, Stall: 3 * time.Second}
	for _, tg := range Targets {
		if !tg.IsSDK() && tg.Kind != Mosquitto {
			continue
		}
		t.Run(tg.Name, func(t *testing.T) {
			if tg.Kind == Mosquitto && bins.Mosquitto == "" {
				t.Skip(errNoMosquitto)
			}
			for _, r := range []Result{
				Fanout(ctx, cfg, tg, 10, 200, 128),
				Fanin(ctx, cfg, tg, 20, 20, 64),
				IoT(ctx, cfg, tg, 20, time.Second, 500*time.Millisecond, 64),
			} {
				check(t, r, !tg.IsSDK())
			}
		})
	}
}

// check fails t if r failed or measured nothing, and, with all, if r lost
// anything: messages, connections, or messages the broker or client
// reported dropped.
func check(t *testing.T, r Result, all bool) {
	t.Helper()
	t.Logf("%s %s %s: %.0f %s, %.2f%% delivered, p99 %.2f ms", r.Target, r.Scenario, r.Case, r.Rate, r.RateUnit, r.DeliveredPct, r.P99ms)
	if r.Err != "" || r.Skipped != "" {
		t.Errorf("%s %s: %s%s", r.Target, r.Scenario, r.Err, r.Skipped)
		return
	}
	if r.Expected == 0 || r.Delivered == 0 || r.Rate <= 0 {
		t.Errorf("%s %s: delivered %d of %d, rate %v (%s)", r.Target, r.Scenario, r.Delivered, r.Expected, r.Rate, r.Note)
	}
	lost := r.Delivered != r.Expected || r.LostConns > 0 || r.SlowNotices > 0 || r.DroppedNote > 0
	if lost && all {
		t.Errorf("%s %s: delivered %d of %d, %d connections lost, %d slow-consumer notices, %d drops (%s)",
			r.Target, r.Scenario, r.Delivered, r.Expected, r.LostConns, r.SlowNotices, r.DroppedNote, r.Note)
	} else if lost {
		t.Logf("%s %s: delivered %d of %d, %d connections lost, %d slow-consumer notices, %d drops",
			r.Target, r.Scenario, r.Delivered, r.Expected, r.LostConns, r.SlowNotices, r.DroppedNote)
	}
	if r.Scenario == "cluster" && r.Nodes == 2 && r.NATSRSS == 0 {
		t.Errorf("%s %s: no NATS RSS", r.Target, r.Scenario)
	}
}

func TestSubject(t *testing.T) {
	for in, want := range map[string]string{"telemetry/+/temp": "telemetry.*.temp", "a/#": "a.>", "bench/fanout": "bench.fanout"} {
		if got := Subject(in); got != want {
			t.Errorf("Subject(%q) = %q, want %q", in, got, want)
		}
	}
}
