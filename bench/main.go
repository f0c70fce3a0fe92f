// Command bench measures ferry against nats-server and mosquitto over
// WebSocket on 127.0.0.1, each broker in a process of its own, ferry both
// with the load generator's own client and with the Go SDK, and prints a
// table per scenario with ratios to NATS, one JSON line per result, and a
// chart.
// It is the module github.com/ferry-io/ferry/bench; the commands below run
// from the repository root through the workspace (go.work), or in bench/
// with "." in place of "./bench".
//
//	go run ./bench                      # the full suite (about 8 minutes on 2 cores; -runs 3 about 20)
//	go run ./bench -quick               # a smoke run
//	go run ./bench -scenarios fanout,latency -json results.jsonl
//	go run ./bench -scenarios cluster -out ""   # one ferry node vs two joined by NATS
//	go run ./bench -scenarios iot -iot-n 5000 -iot-duration 20s
//
// The load logic is in package bench/load. The file cluster_test.go holds a
// go-test benchmark of a two-node cluster (in one process, unlike the
// cluster scenario):
//
//	go test -run '^$' -bench Cluster -benchtime 2000x ./bench
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/ferry-io/ferry/bench/load"
)

func main() {
	scen := flag.String("scenarios", "fanout,fanin,latency,idle,cluster,iot", "comma-separated scenarios: fanout, fanin, latency, idle, cluster, iot")
	quick := flag.Bool("quick", false, "smaller sizes for a fast smoke run")
	out := flag.String("out", "docs", "directory for the chart (benchmarks.png), created if missing; empty: no chart")
	jsonFile := flag.String("json", "", "also write the JSON lines to this file")
	targets := flag.String("targets", targetNames(), "comma-separated targets")
	dur := flag.Duration("duration", 0, "latency: how long to publish (default 5s, 1s with -quick)")
	idleN := flag.Int("idle-n", 0, "idle: connections (default 10000, 500 with -quick)")
	iotN := flag.Int("iot-n", 0, "iot: devices (default 5000, 200 with -quick)")
	iotDur := flag.Duration("iot-duration", 0, "iot: how long to measure, after a warm-up (default 20s, 3s with -quick)")
	queue := flag.Int("queue-bytes", 0, "ferry serve --queue-bytes (0: ferry's default)")
	window := flag.Int("window", 1000, "fanout: most messages the publisher may be ahead of the average subscriber")
	stall := flag.Duration("stall", 10*time.Second, "end a scenario when nothing was delivered for this long")
	ferryBin := flag.String("ferry-bin", "", "ferry binary to use (default: go build ./cmd/ferry)")
	natsdBin := flag.String("natsd-bin", "", "natsd binary to use (default: go build ./bench/natsd)")
	mosquittoBin := flag.String("mosquitto-bin", "", "mosquitto binary to use (default: mosquitto on $PATH, /usr/sbin or /usr/local/sbin)")
	from := flag.String("from", "", "run nothing: print the table and draw the chart from JSON lines saved with -json")
	runs := flag.Int("runs", 1, "run each case this many times (targets taking turns) and report the median run")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the load generator (not the broker) to this file")
	brokerProfiles := flag.String("broker-cpuprofile", "", "directory: every ferry process writes a CPU profile of its run there")
	flag.Parse()
	if *from != "" {
		results, err := readResults(*from)
		if err != nil {
			fatal(err)
		}
		load.Table(os.Stdout, results)
		root, _ := load.ModuleRoot()
		writeChart(*out, root, results)
		return
	}

	plan := load.DefaultPlan()
	if *quick {
		plan = load.QuickPlan()
	}
	plan.Scenarios = strings.Split(*scen, ",")
	plan.Runs = *runs
	if *dur > 0 {
		plan.Duration = *dur
	}
	if *idleN > 0 {
		plan.IdleN = *idleN
	}
	if *iotN > 0 {
		plan.IoTN = *iotN
	}
	if *iotDur > 0 {
		plan.IoTDuration = *iotDur
	}
	plan.Targets = nil
	for _, name := range strings.Split(*targets, ",") {
		found := false
		for _, t := range load.Targets {
			if t.Name == name {
				plan.Targets = append(plan.Targets, t)
				found = true
			}
		}
		if !found {
			fatal(fmt.Errorf("unknown target %q (targets: %s)", name, targetNames()))
		}
	}
	limit := load.RaiseFileLimit()
	for _, c := range []struct {
		scenario string
		n        int
	}{{"idle", plan.IdleN}, {"iot", plan.IoTN}} {
		if want := uint64(c.n) + 100; slices.Contains(plan.Scenarios, c.scenario) && limit < want {
			fmt.Fprintf(os.Stderr, "bench: RLIMIT_NOFILE is %d: %s will stop short of %d connections\n", limit, c.scenario, c.n)
		}
	}

	root, err := load.ModuleRoot()
	if err != nil && (*ferryBin == "" || *natsdBin == "") {
		fatal(err)
	}
	tmp, err := os.MkdirTemp("", "ferry-bench-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(tmp)
	bins := load.Binaries{Ferry: *ferryBin, NATSD: *natsdBin, Mosquitto: *mosquittoBin}
	if bins.Mosquitto == "" {
		bins.Mosquitto = load.FindMosquitto()
	}
	if bins.Ferry == "" || bins.NATSD == "" {
		built, err := load.Build(root, tmp)
		if err != nil {
			fatal(err)
		}
		if bins.Ferry == "" {
			bins.Ferry = built.Ferry
		}
		if bins.NATSD == "" {
			bins.NATSD = built.NATSD
		}
	}
	if *brokerProfiles != "" {
		if err := os.MkdirAll(*brokerProfiles, 0o755); err != nil {
			fatal(err)
		}
	}
	cfg := load.Config{Bins: bins, QueueBytes: *queue, Window: *window, Stall: *stall, ProfileDir: *brokerProfiles}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	host, _ := os.Hostname()
	fmt.Printf("ferry bench: %s, %d CPUs, %s; ferry --queue-bytes %s; fanout window %d msgs; %s\n",
		host, runtime.NumCPU(), runtime.Version(), queueNote(*queue), *window, mosquittoNote(bins.Mosquitto, plan.Targets))
	var lines bytes.Buffer
	began := time.Now()
	results := load.Run(ctx, cfg, plan, func(r load.Result) {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
		lines.Write(b)
		lines.WriteByte('\n')
	})
	load.Table(os.Stdout, results)
	fmt.Printf("\nsuite took %v\n", time.Since(began).Round(time.Second))
	if *jsonFile != "" {
		if err := os.WriteFile(*jsonFile, lines.Bytes(), 0o644); err != nil {
			fatal(err)
		}
	}
	writeChart(*out, root, results)
}

func writeChart(out, root string, results []load.Result) {
	if out == "" {
		return
	}
	dir := out
	if !filepath.IsAbs(dir) && root != "" {
		dir = filepath.Join(root, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "benchmarks.png"))
	if err != nil {
		fatal(err)
	}
	title := fmt.Sprintf("%s over WebSocket, %d CPUs, %s", load.ChartTitle(results), runtime.NumCPU(), time.Now().Format("2006-01-02"))
	if err := load.Chart(f, results, title); err != nil {
		fatal(err)
	}
	if err := f.Close(); err != nil {
		fatal(err)
	}
	fmt.Println("chart:", f.Name())
}

func readResults(name string) ([]load.Result, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []load.Result
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r load.Result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func targetNames() string {
	names := make([]string, len(load.Targets))
	for i, t := range load.Targets {
		names[i] = t.Name
	}
	return strings.Join(names, ",")
}

// mosquittoNote says which mosquitto runs, or that its target is skipped.
func mosquittoNote(bin string, targets []load.Target) string {
	if !slices.ContainsFunc(targets, func(t load.Target) bool { return t.Kind == load.Mosquitto }) {
		return "no mosquitto target"
	}
	if bin == "" {
		return "mosquitto not found: its target is skipped (Debian: apt-get install mosquitto)"
	}
	if v := load.MosquittoVersion(bin); v != "" {
		return v
	}
	return "mosquitto " + bin
}

func queueNote(q int) string {
	if q > 0 {
		return fmt.Sprintf("%d (raised)", q)
	}
	return "default"
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
