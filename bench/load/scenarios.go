package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config holds what every scenario needs.
type Config struct {
	Bins Binaries
	// QueueBytes, when positive, is passed to ferry serve as --queue-bytes;
	// zero keeps ferry's default.
	QueueBytes int
	// Window bounds the messages in flight in fanout: the publisher waits
	// while it is more than Window messages ahead of the average subscriber.
	Window int
	// Stall ends a scenario when no delivery happened for this long.
	Stall time.Duration
	// DialParallel is how many connections are opened at a time.
	DialParallel int
	Log          io.Writer
	// ProfileDir, when set, makes every ferry process write a CPU profile
	// of its run there (ferry serve --cpuprofile), named after the
	// scenario, case and target.
	ProfileDir string
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 1000
	}
	if c.Stall <= 0 {
		c.Stall = 10 * time.Second
	}
	if c.DialParallel <= 0 {
		c.DialParallel = 32
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Result is one scenario run against one target.
type Result struct {
	Scenario  string  `json:"scenario"`
	Case      string  `json:"case"`
	Target    string  `json:"target"`
	Rate      float64 `json:"rate"`
	RateUnit  string  `json:"rate_unit"`
	Expected  int64   `json:"expected"`
	Delivered int64   `json:"delivered"`
	// DeliveredPct is Delivered/Expected in percent (idle: connections
	// established out of those asked for).
	DeliveredPct float64 `json:"delivered_pct"`
	P50ms        float64 `json:"p50_ms,omitempty"`
	P90ms        float64 `json:"p90_ms,omitempty"`
	P99ms        float64 `json:"p99_ms,omitempty"`
	P999ms       float64 `json:"p999_ms,omitempty"`
	MaxMs        float64 `json:"max_ms,omitempty"`
	ElapsedS     float64 `json:"elapsed_s"`
	BrokerCPUs   float64 `json:"broker_cpu_s"`
	LoadGenCPUs  float64 `json:"loadgen_cpu_s"`
	BrokerRSS    int64   `json:"broker_rss_bytes"`
	// BrokerReads and BrokerWrites count the broker's read and write
	// system calls (/proc/<pid>/io syscr, syscw) while measuring.
	BrokerReads  int64   `json:"broker_read_syscalls,omitempty"`
	BrokerWrites int64   `json:"broker_write_syscalls,omitempty"`
	BrokerPeak   int64   `json:"broker_peak_rss_bytes"`
	PerConnKiB   float64 `json:"rss_per_conn_kib,omitempty"`
	Conns        int     `json:"conns,omitempty"`
	LostConns    int     `json:"lost_conns"`
	SlowNotices  int64   `json:"slow_consumer_notices"`
	DroppedNote  int64   `json:"dropped_reported"`
	BrokerArgs   string  `json:"broker_args,omitempty"`
	// Nodes, NATSCPUs and NATSRSS are set by the cluster scenario: the ferry
	// nodes (whose CPU and RSS the Broker fields sum) and the NATS server
	// that joins them.
	Nodes    int     `json:"nodes,omitempty"`
	NATSCPUs float64 `json:"nats_cpu_s,omitempty"`
	NATSRSS  int64   `json:"nats_rss_bytes,omitempty"`
	// Runs and RunValues are set when a case ran several times: this is
	// the median run, RunValues the headline value of every run.
	Runs      int       `json:"runs,omitempty"`
	RunValues []float64 `json:"run_values,omitempty"`
	// CPUPerMsgUs is the broker's CPU time per message delivered to the
	// dashboard, in µs (iot).
	CPUPerMsgUs float64 `json:"broker_cpu_us_per_msg,omitempty"`
	// Skipped says why the target did not run (its broker is not
	// installed): not a failure.
	Skipped string `json:"skipped,omitempty"`
	Err     string `json:"error,omitempty"`
	Note    string `json:"note,omitempty"`
}

// ok reports whether r has measurements (it neither failed nor was skipped).
func (r *Result) ok() bool { return r.Err == "" && r.Skipped == "" }

func (r *Result) pct() {
	if r.Expected > 0 {
		r.DeliveredPct = 100 * float64(r.Delivered) / float64(r.Expected)
	}
}

func (r *Result) percentiles(lat []int64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)]) / 1e6
	}
	r.P50ms, r.P90ms, r.P99ms, r.P999ms = at(0.50), at(0.90), at(0.99), at(0.999)
	r.MaxMs = float64(lat[len(lat)-1]) / 1e6
}

// StartBroker runs the broker of t as a child process.
// name (scenario, case, target) names its CPU profile if cfg.ProfileDir is set.
func StartBroker(cfg *Config, t Target, name string) (*Proc, string, error) {
	if t.IsFerry() {
		return startFerry(cfg, name)
	}
	if t.Kind == Mosquitto {
		return startMosquitto(cfg)
	}
	args := []string{"-ws-port", "{port}"}
	p, err := StartProc(cfg.Bins.NATSD, args, "ws://127.0.0.1:%d")
	return p, "nats-server defaults, websocket no_tls", err
}

// startFerry runs `ferry serve` on a free port with the flags of cfg and
// extra (e.g. --nats URL) as a child process.
func startFerry(cfg *Config, name string, extra ...string) (*Proc, string, error) {
	args := []string{"serve", "--listen", "127.0.0.1:{port}", "--log-level", "warn"}
	if cfg.QueueBytes > 0 {
		args = append(args, "--queue-bytes", strconv.Itoa(cfg.QueueBytes))
	}
	args = append(args, extra...)
	shown := fmt.Sprint(args[1:])
	if cfg.ProfileDir != "" {
		file := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '_'
		}, name)
		args = append(args, "--cpuprofile", filepath.Join(cfg.ProfileDir, file+".prof"))
	}
	p, err := StartProc(cfg.Bins.Ferry, args, "ws://127.0.0.1:%d/ws")
	return p, shown, err
}

// dialMany opens n connections, DialParallel at a time; it stops at the
// first error and returns the connections opened so far.
func dialMany(ctx context.Context, cfg *Config, t Target, url string, n, payload int, setup func(i int, c Conn) error) ([]Conn, error) {
	conns := make([]Conn, n)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < cfg.DialParallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				mu.Lock()
				failed := firstErr != nil
				mu.Unlock()
				if failed {
					return
				}
				c, err := Dial(t, url, payload)
				if err == nil && setup != nil {
					if err = setup(i, c); err != nil {
						c.Close()
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	out := conns[:0]
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, firstErr
}

func closeAll(conns []Conn) {
	var wg sync.WaitGroup
	for i := 0; i < len(conns); i += 256 {
		wg.Add(1)
		go func(cs []Conn) {
			defer wg.Done()
			for _, c := range cs {
				c.Close()
			}
		}(conns[i:min(i+256, len(conns))])
	}
	wg.Wait()
}

func health(r *Result, conns []Conn) {
	why := ""
	for _, c := range conns {
		if c.Lost() {
			r.LostConns++
			if l, ok := c.(interface{ LostReason() string }); ok && why == "" {
				why = l.LostReason()
			}
		}
		r.SlowNotices += c.SlowConsumer()
		r.DroppedNote += c.Dropped()
	}
	if why != "" {
		r.Note += fmt.Sprintf(" a connection was lost: %s;", why)
	}
}

// sink collects what a subscriber received.
type sink struct {
	mu  sync.Mutex
	lat []int64
}

// waitCount waits until count reaches want, or nothing arrived for stall.
// It returns the time of the last change it saw. It polls every 500 µs,
// and every 10 ms once nothing arrived for 50 ms, so that waiting out a
// stall (messages were lost) costs the load generator little CPU.
func waitCount(ctx context.Context, count *atomic.Int64, want int64, stall time.Duration) time.Time {
	last, lastN := time.Now(), count.Load()
	for {
		n := count.Load()
		now := time.Now()
		if n != lastN {
			last, lastN = now, n
		}
		if n >= want || now.Sub(last) > stall || ctx.Err() != nil {
			return last
		}
		if now.Sub(last) > 50*time.Millisecond {
			time.Sleep(10 * time.Millisecond)
		} else {
			time.Sleep(500 * time.Microsecond)
		}
	}
}

// subscribers opens n connections subscribed to topic that record latency.
func subscribers(ctx context.Context, cfg *Config, t Target, url, topic string, n, capHint int, count *atomic.Int64) ([]Conn, []*sink, error) {
	sinks := make([]*sink, n)
	conns, err := dialMany(ctx, cfg, t, url, n, 8, func(i int, c Conn) error {
		s := &sink{lat: make([]int64, 0, capHint)}
		sinks[i] = s
		return c.Subscribe(topic, func(sent int64) {
			d := time.Now().UnixNano() - sent
			s.mu.Lock()
			s.lat = append(s.lat, d)
			s.mu.Unlock()
			count.Add(1)
		})
	})
	return conns, sinks, err
}

func merge(sinks []*sink) []int64 {
	var all []int64
	for _, s := range sinks {
		if s == nil {
			continue
		}
		s.mu.Lock()
		all = append(all, s.lat...)
		s.mu.Unlock()
	}
	return all
}

// selfCPU returns the load generator's own user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is what measure reads: the broker's and the load generator's CPU
// time, and the broker's read and write system calls, so far.
type usage struct {
	broker, self  time.Duration
	reads, writes int64
}

func measure(p *Proc) usage {
	r, w := p.Syscalls()
	return usage{broker: p.CPU(), self: selfCPU(), reads: r, writes: w}
}

func finish(r *Result, p *Proc, u0 usage) {
	u := measure(p)
	r.BrokerCPUs = (u.broker - u0.broker).Seconds()
	r.LoadGenCPUs = (u.self - u0.self).Seconds()
	r.BrokerReads, r.BrokerWrites = u.reads-u0.reads, u.writes-u0.writes
	r.BrokerRSS = p.RSS()
	r.BrokerPeak = p.PeakRSS()
	if !p.Alive() {
		r.Note += " broker exited: " + p.Output()
	}
}

// startBroker runs the broker of t for r's scenario and records its
// arguments in r; on failure it sets r.Err and returns nil.
func startBroker(cfg *Config, t Target, r *Result) *Proc {
	p, args, err := StartBroker(cfg, t, r.Scenario+" "+r.Case+" "+t.Name)
	if errors.Is(err, errNoMosquitto) {
		r.Skipped = err.Error()
		return nil
	}
	if err != nil {
		r.Err = err.Error()
		return nil
	}
	r.BrokerArgs = args
	return p
}

// conclude fills in what was delivered, in elapsed, from count, the
// health of conns, and the latency percentiles of sinks; it closes the
// subscribers first (*subs, then nil for the caller's deferred close).
func (r *Result) conclude(count *atomic.Int64, elapsed time.Duration, conns []Conn, subs *[]Conn, sinks []*sink) {
	r.Delivered = count.Load()
	r.ElapsedS = elapsed.Seconds()
	if r.ElapsedS > 0 {
		r.Rate = float64(r.Delivered) / r.ElapsedS
	}
	r.pct()
	health(r, conns)
	closeAll(*subs)
	*subs = nil
	r.percentiles(merge(sinks))
}

// Fanout: n subscribers on one topic, one publisher sending m messages of
// size bytes as fast as the window allows.
func Fanout(ctx context.Context, cfg Config, t Target, n, m, size int) Result {
	cfg.defaults()
	r := Result{Scenario: "fanout", Case: fmt.Sprintf("N=%d M=%d P=%d", n, m, size), Target: t.Name,
		RateUnit: "deliveries/s", Expected: int64(n) * int64(m), Conns: n + 1}
	p := startBroker(&cfg, t, &r)
	if p == nil {
		return r
	}
	defer p.Stop()
	const topic = "bench/fanout"
	var count atomic.Int64
	subs, sinks, err := subscribers(ctx, &cfg, t, p.URL, topic, n, m, &count)
	defer func() { closeAll(subs) }()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	pub, err := Dial(t, p.URL, size)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pub.Close()
	cpu0 := measure(p)
	start := time.Now()
	publishWindowed(ctx, &cfg, &r, pub, topic, n, m, &count)
	last := waitCount(ctx, &count, r.Expected, cfg.Stall)
	finish(&r, p, cpu0)
	r.conclude(&count, last.Sub(start), append(subs, pub), &subs, sinks)
	return r
}

// publishWindowed is fanout's publisher: m messages to topic, each
// stamped with its send time, waiting while it is more than cfg.Window
// messages ahead of the average of n subscribers (count is their
// deliveries). It flushes the publisher at the end.
func publishWindowed(ctx context.Context, cfg *Config, r *Result, pub Conn, topic string, n, m int, count *atomic.Int64) {
	start := time.Now()
	window := int64(cfg.Window) * int64(n)
	for i := 0; i < m; i++ {
		for int64(i)*int64(n)-count.Load() > window {
			if time.Since(start) > time.Duration(m)*time.Millisecond+cfg.Stall*3 || ctx.Err() != nil || pub.Lost() {
				r.Note += " publisher gave up waiting for the window;"
				i = m
				break
			}
			time.Sleep(50 * time.Microsecond)
		}
		if i < m {
			if err := pub.Publish(topic, time.Now().UnixNano()); err != nil {
				r.Err = "publish: " + err.Error()
				break
			}
		}
	}
	_ = pub.Flush(cfg.Stall)
}

// Fanin: n device connections each publishing k messages of size bytes to
// telemetry/{device}/temp, one subscriber on telemetry/+/temp.
func Fanin(ctx context.Context, cfg Config, t Target, n, k, size int) Result {
	cfg.defaults()
	r := Result{Scenario: "fanin", Case: fmt.Sprintf("N=%d K=%d P=%d", n, k, size), Target: t.Name,
		RateUnit: "msgs/s", Expected: int64(n) * int64(k), Conns: n + 1}
	p := startBroker(&cfg, t, &r)
	if p == nil {
		return r
	}
	defer p.Stop()
	var count atomic.Int64
	subs, sinks, err := subscribers(ctx, &cfg, t, p.URL, "telemetry/+/temp", 1, n*k, &count)
	defer func() { closeAll(subs) }()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	devs, err := dialMany(ctx, &cfg, t, p.URL, n, size, nil)
	defer func() { closeAll(devs) }()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	cpu0 := measure(p)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	var perr atomic.Value
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("telemetry/dev-%d/temp", i)
			<-gate
			for j := 0; j < k; j++ {
				if err := d.Publish(topic, time.Now().UnixNano()); err != nil {
					perr.Store(err.Error())
					return
				}
			}
			_ = d.Flush(cfg.Stall)
		}()
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	last := waitCount(ctx, &count, r.Expected, cfg.Stall)
	finish(&r, p, cpu0)
	if e, ok := perr.Load().(string); ok {
		r.Note += " publish error: " + e + ";"
	}
	r.conclude(&count, last.Sub(start), append(subs, devs...), &subs, sinks)
	return r
}

// Latency: one publisher at rate msgs/s for d to n subscribers.
func Latency(ctx context.Context, cfg Config, t Target, n, rate int, d time.Duration, size int) Result {
	cfg.defaults()
	r := Result{Scenario: "latency", Case: fmt.Sprintf("R=%d N=%d D=%v P=%d", rate, n, d, size), Target: t.Name,
		RateUnit: "deliveries/s", Conns: n + 1}
	p := startBroker(&cfg, t, &r)
	if p == nil {
		return r
	}
	defer p.Stop()
	const topic = "bench/latency"
	var count atomic.Int64
	subs, sinks, err := subscribers(ctx, &cfg, t, p.URL, topic, n, int(float64(rate)*d.Seconds())+16, &count)
	defer func() { closeAll(subs) }()
	if err != nil {
		r.Err = err.Error()
		return r
	}
	pub, err := Dial(t, p.URL, size)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	defer pub.Close()
	cpu0 := measure(p)
	start := time.Now()
	sent := 0
	for ctx.Err() == nil {
		el := time.Since(start)
		if el >= d {
			break
		}
		due := int(el.Seconds() * float64(rate))
		for ; sent < due; sent++ {
			if err := pub.Publish(topic, time.Now().UnixNano()); err != nil {
				r.Err = "publish: " + err.Error()
				break
			}
		}
		if r.Err != "" {
			break
		}
		time.Sleep(200 * time.Microsecond)
	}
	sentFor := time.Since(start)
	r.Expected = int64(sent) * int64(n)
	_ = pub.Flush(cfg.Stall)
	waitCount(ctx, &count, r.Expected, cfg.Stall)
	finish(&r, p, cpu0)
	r.conclude(&count, sentFor, append(subs, pub), &subs, sinks)
	return r
}
