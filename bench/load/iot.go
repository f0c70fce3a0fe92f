package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// IoT is a steady fleet: n device connections, each subscribed to its own
// cmd/dev-<i> (which stays idle) and publishing one message of size bytes a
// second to telemetry/dev-<i>/temp, the devices' phases spread evenly over
// the second with a random jitter; one dashboard connection subscribed to
// telemetry/+/temp. A device that fell behind skips the seconds it missed
// (as a time.Ticker does). The devices publish for warmup, then for d, which is
// what is measured: the messages sent during d, their delivery to the
// dashboard (latency = receive time − send time), the broker's CPU time
// during d per message delivered, and its RSS at the end of d.
func IoT(ctx context.Context, cfg Config, t Target, n int, d, warmup time.Duration, size int) Result {
	cfg.defaults()
	r := Result{Scenario: "iot", Case: fmt.Sprintf("N=%d D=%v P=%d", n, d, size), Target: t.Name,
		RateUnit: "msgs/s", Conns: n + 1}
	p := startBroker(&cfg, t, &r)
	if p == nil {
		return r
	}
	defer p.Stop()

	// t0 and t1 bound the measured window, as Unix ns; they are set before
	// the first publish (atomics: the dashboard's handler runs already).
	var t0, t1 atomic.Int64
	t0.Store(1<<63 - 1)
	var count atomic.Int64
	dash := &sink{lat: make([]int64, 0, int(float64(n)*d.Seconds())+n)}
	subs, err := dialMany(ctx, &cfg, t, p.URL, 1, 8, func(_ int, c Conn) error {
		return c.Subscribe("telemetry/+/temp", func(sent int64) {
			if sent < t0.Load() || sent >= t1.Load() {
				return // warm-up, or after the window
			}
			lat := time.Now().UnixNano() - sent
			dash.mu.Lock()
			dash.lat = append(dash.lat, lat)
			dash.mu.Unlock()
			count.Add(1)
		})
	})
	defer func() { closeAll(subs) }()
	if err != nil {
		r.Err = "dashboard: " + err.Error()
		return r
	}
	devs, err := dialMany(ctx, &cfg, t, p.URL, n, size, func(i int, c Conn) error {
		return c.Subscribe(fmt.Sprintf("cmd/dev-%d", i), func(int64) {})
	})
	defer func() { closeAll(devs) }()
	if err != nil {
		r.Err = fmt.Sprintf("devices: %d of %d connected: %v", len(devs), n, err)
		return r
	}

	start := time.Now().Add(50 * time.Millisecond) // every device goroutine is waiting by then
	from := start.Add(warmup)
	until := from.Add(d)
	t1.Store(until.UnixNano())
	t0.Store(from.UnixNano())
	var expected atomic.Int64
	var perr atomic.Value
	var wg sync.WaitGroup
	for i, dev := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			topic := fmt.Sprintf("telemetry/dev-%d/temp", i)
			// evenly spread phases, each jittered within its slot
			next := start.Add(time.Duration((float64(i) + rand.Float64()) / float64(len(devs)) * float64(time.Second)))
			for ctx.Err() == nil {
				if w := time.Until(next); w > 0 {
					time.Sleep(w)
				}
				sent := time.Now().UnixNano()
				if sent >= until.UnixNano() {
					break
				}
				if sent >= from.UnixNano() { // as the dashboard decides
					expected.Add(1)
				}
				if err := dev.Publish(topic, sent); err != nil {
					perr.Store(err.Error())
					return
				}
				// like a time.Ticker, a device that fell behind (its publish
				// was held back) skips the seconds it missed
				next = next.Add(time.Second)
				for now := time.Now(); next.Before(now); {
					next = next.Add(time.Second)
				}
			}
			_ = dev.Flush(cfg.Stall)
		}()
	}

	if waitCtx(ctx, time.Until(from)) != nil {
		r.Err = ctx.Err().Error()
		wg.Wait()
		return r
	}
	u0 := measure(p)
	_ = waitCtx(ctx, time.Until(until))
	finish(&r, p, u0)
	wg.Wait()
	r.Expected = expected.Load()
	waitCount(ctx, &count, r.Expected, cfg.Stall)
	if e, ok := perr.Load().(string); ok {
		r.Note += " publish error: " + e + ";"
	}
	if due := float64(len(devs)) * d.Seconds(); float64(r.Expected) < 0.99*due {
		r.Note += fmt.Sprintf(" the devices sent %.1f%% of their schedule (publishes held back by the client);", 100*float64(r.Expected)/due)
	}
	r.conclude(&count, d, append(subs, devs...), &subs, []*sink{dash})
	if r.Delivered > 0 {
		r.CPUPerMsgUs = r.BrokerCPUs * 1e6 / float64(r.Delivered)
	}
	return r
}
