package load

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lxzan/gws"
)

// rawNATS is a minimal NATS client over gws used by the idle scenario, so
// that ferry and NATS connections cost the load generator the same (one gws
// connection and one goroutine each; nats.go would add its own goroutines
// and 32 KiB buffers per connection to the generator, not to the broker).
type rawNATS struct {
	gws.BuiltinEventHandler
	conn *gws.Conn
	pong chan struct{}
}

func (c *rawNATS) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	if bytes.Contains(m.Bytes(), []byte("PONG\r\n")) {
		select {
		case c.pong <- struct{}{}:
		default:
		}
	}
	if bytes.HasPrefix(m.Bytes(), []byte("PING\r\n")) {
		_ = c.conn.WriteMessage(gws.OpcodeBinary, []byte("PONG\r\n"))
	}
}

func dialRawNATS(url string, sid int) (*rawNATS, error) {
	c := &rawNATS{pong: make(chan struct{}, 1)}
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, HandshakeTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	c.conn = conn
	go conn.ReadLoop()
	msg := fmt.Sprintf("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nSUB idle.%d %d\r\nPING\r\n", sid, sid)
	if err := conn.WriteMessage(gws.OpcodeBinary, []byte(msg)); err != nil {
		conn.NetConn().Close()
		return nil, err
	}
	select {
	case <-c.pong: // the server has processed CONNECT and SUB
		return c, nil
	case <-time.After(10 * time.Second):
		conn.NetConn().Close()
		return nil, fmt.Errorf("nats: no PONG within 10s")
	}
}

// idleConn is a connection of the idle scenario: a Conn, or a rawNATS.
type idleConn interface {
	Close()
	Lost() bool
}

func (c *rawNATS) Close()     { _ = c.conn.NetConn().Close() }
func (c *rawNATS) Lost() bool { return false }

// Idle opens n connections, each with one subscription, and reports the
// broker's RSS per connection and the connections established per second.
func Idle(ctx context.Context, cfg Config, t Target, n int) Result {
	cfg.defaults()
	r := Result{Scenario: "idle", Case: fmt.Sprintf("N=%d", n), Target: t.Name, RateUnit: "conns/s", Expected: int64(n)}
	p := startBroker(&cfg, t, &r)
	if p == nil {
		return r
	}
	defer p.Stop()
	_ = waitCtx(ctx, 500*time.Millisecond)
	rss0 := p.RSS()
	cpu0 := measure(p)
	conns := make([]idleConn, n)
	errs := make(chan error, cfg.DialParallel)
	next := make(chan int)
	start := time.Now()
	for w := 0; w < cfg.DialParallel; w++ {
		go func() {
			for i := range next {
				var c idleConn
				var err error
				if t.Kind != NATS {
					var fc Conn
					fc, err = Dial(t, p.URL, 8)
					if err == nil {
						if err = fc.Subscribe(fmt.Sprintf("idle/%d", i), func(int64) {}); err != nil {
							fc.Close()
						}
						c = fc
					}
				} else {
					c, err = dialRawNATS(p.URL, i+1)
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
			}
			errs <- nil
		}()
	}
	var firstErr error
	workers := cfg.DialParallel
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err := <-errs:
			workers--
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if firstErr != nil || workers == 0 {
				break feed
			}
			i--
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	for ; workers > 0; workers-- {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	elapsed := time.Since(start)
	established := 0
	for _, c := range conns {
		if c != nil {
			established++
		}
	}
	_ = waitCtx(ctx, time.Second) // let the broker settle
	rss1 := p.RSS()
	finish(&r, p, cpu0)
	r.Delivered = int64(established)
	r.Conns = established
	r.pct()
	r.ElapsedS = elapsed.Seconds()
	r.Rate = float64(established) / elapsed.Seconds()
	if established > 0 {
		r.PerConnKiB = float64(rss1-rss0) / float64(established) / 1024
	}
	if firstErr != nil {
		r.Note += fmt.Sprintf(" reached %d of %d connections: %v;", established, n, firstErr)
	}
	for _, c := range conns {
		if c != nil && c.Lost() {
			r.LostConns++
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < len(conns); i += 512 {
		wg.Add(1)
		go func(cs []idleConn) {
			defer wg.Done()
			for _, c := range cs {
				if c != nil {
					c.Close()
				}
			}
		}(conns[i:min(i+512, len(conns))])
	}
	wg.Wait()
	return r
}
