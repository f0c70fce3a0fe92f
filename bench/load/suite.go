package load

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Plan is the sizes of one suite run.
type Plan struct {
	Scenarios []string // fanout, fanin, latency, idle, cluster, iot
	Fanout    [][2]int // {N, M} pairs
	FanoutP   int
	FaninN    int
	FaninK    int
	FaninP    int
	LatencyN  int
	Rates     []int
	Duration  time.Duration
	LatencyP  int
	IdleN     int
	Cluster   [2]int // {N, M} of the cluster scenario (P is FanoutP)
	// IoTN devices publish one IoTP-byte message a second for IoTWarmup,
	// then for IoTDuration, which is measured.
	IoTN        int
	IoTDuration time.Duration
	IoTWarmup   time.Duration
	IoTP        int
	Targets     []Target
	// Runs is how many times each case runs against every target (the
	// targets take turns); each row is the run with the median headline
	// value. Default 1.
	Runs int
}

// DefaultPlan is the suite of issue 6.
func DefaultPlan() Plan {
	return Plan{
		Scenarios: []string{"fanout", "fanin", "latency", "idle", "cluster", "iot"},
		Fanout:    [][2]int{{100, 20000}, {1000, 2000}},
		FanoutP:   128,
		FaninN:    1000, FaninK: 200, FaninP: 64,
		LatencyN: 100, Rates: []int{1000, 10000}, Duration: 5 * time.Second, LatencyP: 128,
		IdleN:   10000,
		Cluster: [2]int{100, 20000},
		IoTN:    5000, IoTDuration: 20 * time.Second, IoTWarmup: 3 * time.Second, IoTP: 64,
		Targets: Targets,
	}
}

// QuickPlan is a smaller suite for a smoke run.
func QuickPlan() Plan {
	p := DefaultPlan()
	p.Fanout = [][2]int{{20, 1000}, {100, 200}}
	p.FaninN, p.FaninK = 50, 40
	p.LatencyN, p.Rates, p.Duration = 20, []int{1000}, time.Second
	p.IdleN = 500
	p.Cluster = [2]int{20, 1000}
	p.IoTN, p.IoTDuration, p.IoTWarmup = 200, 3*time.Second, time.Second
	return p
}

// Run runs the plan: every scenario against every target, in that order
// (targets inner, so a table's rows are adjacent). emit is called with
// each result as soon as it is known.
func Run(ctx context.Context, cfg Config, plan Plan, emit func(Result)) []Result {
	var out []Result
	do := func(f func(t Target) Result) {
		runs := make([][]Result, len(plan.Targets))
		for range max(plan.Runs, 1) {
			for i, t := range plan.Targets {
				if ctx.Err() != nil {
					return
				}
				runs[i] = append(runs[i], f(t))
			}
		}
		for _, rs := range runs {
			r := median(rs)
			out = append(out, r)
			if emit != nil {
				emit(r)
			}
		}
	}
	for _, s := range plan.Scenarios {
		switch s {
		case "fanout":
			for _, nm := range plan.Fanout {
				do(func(t Target) Result { return Fanout(ctx, cfg, t, nm[0], nm[1], plan.FanoutP) })
			}
		case "fanin":
			do(func(t Target) Result { return Fanin(ctx, cfg, t, plan.FaninN, plan.FaninK, plan.FaninP) })
		case "latency":
			for _, rate := range plan.Rates {
				do(func(t Target) Result { return Latency(ctx, cfg, t, plan.LatencyN, rate, plan.Duration, plan.LatencyP) })
			}
		case "idle":
			do(func(t Target) Result { return Idle(ctx, cfg, t, plan.IdleN) })
		case "iot":
			do(func(t Target) Result { return IoT(ctx, cfg, t, plan.IoTN, plan.IoTDuration, plan.IoTWarmup, plan.IoTP) })
		case "cluster":
			// ferry with the load generator's clients only; one node, then
			// two, for each codec
			for _, t := range plan.Targets {
				if !t.IsFerry() || t.IsSDK() {
					continue
				}
				for _, nodes := range []int{1, 2} {
					if ctx.Err() != nil {
						break
					}
					r := Cluster(ctx, cfg, t, nodes, plan.Cluster[0], plan.Cluster[1], plan.FanoutP)
					out = append(out, r)
					if emit != nil {
						emit(r)
					}
				}
			}
		default:
			r := Result{Scenario: s, Target: "-", Err: "unknown scenario"}
			out = append(out, r)
			if emit != nil {
				emit(r)
			}
		}
	}
	return out
}

// median returns the run of rs with the median headline value (the lower
// middle one for an even count; runs that failed count as worst), with
// every run's headline value in RunValues.
func median(rs []Result) Result {
	if len(rs) == 1 {
		return rs[0]
	}
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Result) int {
		va, higher := headline(a)
		vb, _ := headline(b)
		if !a.ok() || !b.ok() {
			return cmp.Compare(b.Err+b.Skipped, a.Err+a.Skipped) // failed runs first: worst
		}
		if higher {
			return cmp.Compare(va, vb)
		}
		return cmp.Compare(vb, va)
	})
	m := sorted[(len(sorted)-1)/2]
	m.Runs = len(rs)
	for _, r := range rs {
		v, _ := headline(r)
		m.RunValues = append(m.RunValues, v)
	}
	return m
}

// headline returns the headline metric of r's table, and whether higher is
// better for it.
func headline(r Result) (float64, bool) {
	switch r.Scenario {
	case "latency":
		return r.P99ms, false
	case "idle":
		return r.PerConnKiB, false
	case "iot":
		return r.CPUPerMsgUs, false
	}
	return r.Rate, true
}

// Table writes one table per scenario case, with each target's ratio to
// NATS of the headline metric (rate; p99 for latency; KiB/conn for idle;
// broker CPU per message for iot).
func Table(w io.Writer, results []Result) {
	type key struct{ s, c string }
	var order []key
	groups := map[key][]Result{}
	for _, r := range results {
		k := key{r.Scenario, r.Case}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		rs := groups[k]
		var nats *Result
		for i := range rs {
			if rs[i].Target == "nats" && rs[i].ok() {
				nats = &rs[i]
			}
		}
		fmt.Fprintf(w, "\n== %s %s\n", k.s, k.c)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		switch k.s {
		case "idle":
			fmt.Fprintln(tw, "target\tconns\tconns/s\tKiB/conn\tmem vs NATS\trate vs NATS\tbroker CPU s\tloadgen CPU s\tbroker RSS MiB\t")
		case "iot":
			fmt.Fprintln(tw, "target\tmsgs/s\tdelivered\tp50 ms\tp99 ms\tmax ms\tbroker CPU µs/msg\tCPU/msg vs NATS\tp99 vs NATS\tbroker CPU s\tloadgen CPU s\tbroker RSS MiB\tbroker reads/writes\t")
		case "cluster":
			fmt.Fprintln(tw, "target\tdeliveries/s\tdelivered\tp50 ms\tp99 ms\tmax ms\trate cluster/single\tp99 cluster/single\tferry CPU s\tloadgen CPU s\tferry RSS MiB\tNATS CPU s\tNATS RSS MiB\t")
		case "latency":
			fmt.Fprintln(tw, "target\tdeliveries/s\tdelivered\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\tp99 vs NATS\tbroker CPU s\tloadgen CPU s\tbroker RSS MiB\tbroker reads/writes\t")
		default:
			fmt.Fprintf(tw, "target\t%s\tdelivered\tp50 ms\tp99 ms\tmax ms\tvs NATS\tbroker CPU s\tloadgen CPU s\tbroker RSS MiB\tbroker reads/writes\t\n", rs[0].RateUnit)
		}
		for _, r := range rs {
			if r.Skipped != "" {
				fmt.Fprintf(tw, "%s\tskipped\t\n", r.Target)
				continue
			}
			if r.Err != "" {
				fmt.Fprintf(tw, "%s\terror: %s\t\n", r.Target, r.Err)
				continue
			}
			ratio := "-"
			if nats != nil && r.Target != "nats" {
				a, _ := headline(r)
				b, _ := headline(*nats)
				if b > 0 {
					ratio = fmt.Sprintf("%.2fx", a/b)
				}
			}
			mib := float64(r.BrokerRSS) / (1 << 20)
			switch k.s {
			case "cluster":
				// ratios against the single-node row of the same codec
				rr, pr := "-", "-"
				for _, s := range rs {
					if r.Nodes > 1 && s.Nodes == 1 && s.Err == "" && clusterBase(s.Target) == clusterBase(r.Target) {
						if s.Rate > 0 {
							rr = fmt.Sprintf("%.2fx", r.Rate/s.Rate)
						}
						if s.P99ms > 0 {
							pr = fmt.Sprintf("%.2fx", r.P99ms/s.P99ms)
						}
					}
				}
				nc, nm := "-", "-"
				if r.Nodes > 1 {
					nc, nm = fmt.Sprintf("%.2f", r.NATSCPUs), fmt.Sprintf("%.1f", float64(r.NATSRSS)/(1<<20))
				}
				fmt.Fprintf(tw, "%s\t%.0f\t%.2f%%\t%.2f\t%.2f\t%.2f\t%s\t%s\t%.2f\t%.2f\t%.1f\t%s\t%s\t\n", r.Target, r.Rate, r.DeliveredPct,
					r.P50ms, r.P99ms, r.MaxMs, rr, pr, r.BrokerCPUs, r.LoadGenCPUs, mib, nc, nm)
			case "idle":
				rr := "-"
				if nats != nil && r.Target != "nats" && nats.Rate > 0 {
					rr = fmt.Sprintf("%.2fx", r.Rate/nats.Rate)
				}
				fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%s\t%s\t%.2f\t%.2f\t%.1f\t\n", r.Target, r.Conns, r.Rate, r.PerConnKiB, ratio, rr, r.BrokerCPUs, r.LoadGenCPUs, mib)
			case "iot":
				pr := "-"
				if nats != nil && r.Target != "nats" && nats.P99ms > 0 {
					pr = fmt.Sprintf("%.2fx", r.P99ms/nats.P99ms)
				}
				fmt.Fprintf(tw, "%s\t%.0f\t%.2f%%\t%.2f\t%.2f\t%.2f\t%.1f\t%s\t%s\t%.2f\t%.2f\t%.1f\t%s\t\n", r.Target, r.Rate, r.DeliveredPct,
					r.P50ms, r.P99ms, r.MaxMs, r.CPUPerMsgUs, ratio, pr, r.BrokerCPUs, r.LoadGenCPUs, mib, rw(r))
			case "latency":
				fmt.Fprintf(tw, "%s\t%.0f\t%.2f%%\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.1f\t%s\t\n", r.Target, r.Rate, r.DeliveredPct,
					r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.MaxMs, ratio, r.BrokerCPUs, r.LoadGenCPUs, mib, rw(r))
			default:
				fmt.Fprintf(tw, "%s\t%.0f\t%.2f%%\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%.2f\t%.1f\t%s\t\n", r.Target, r.Rate, r.DeliveredPct,
					r.P50ms, r.P99ms, r.MaxMs, ratio, r.BrokerCPUs, r.LoadGenCPUs, mib, rw(r))
			}
		}
		tw.Flush()
		for _, r := range rs {
			var notes []string
			if r.LostConns > 0 {
				notes = append(notes, fmt.Sprintf("%d connections lost", r.LostConns))
			}
			if r.SlowNotices > 0 {
				notes = append(notes, fmt.Sprintf("%d slow_consumer notices", r.SlowNotices))
			}
			if r.DroppedNote > 0 {
				notes = append(notes, fmt.Sprintf("%d drops reported", r.DroppedNote))
			}
			if n := strings.TrimSpace(r.Note); n != "" {
				notes = append(notes, n)
			}
			if r.Skipped != "" {
				notes = append(notes, r.Skipped)
			}
			if r.Runs > 1 {
				vs := make([]string, len(r.RunValues))
				for i, v := range r.RunValues {
					vs[i] = fmt.Sprintf("%.4g", v)
				}
				notes = append(notes, fmt.Sprintf("median of %d runs (%s)", r.Runs, strings.Join(vs, ", ")))
			}
			if len(notes) > 0 {
				fmt.Fprintf(w, "  %s: %s\n", r.Target, strings.Join(notes, "; "))
			}
		}
	}
}

// rw shows the broker's read and write system calls of r, in thousands.
func rw(r Result) string {
	if r.BrokerReads == 0 && r.BrokerWrites == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fk/%.1fk", float64(r.BrokerReads)/1e3, float64(r.BrokerWrites)/1e3)
}
