package client_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const waitTimeout = 20 * time.Second

// testBroker is an in-process broker on a fixed loopback address that a
// test can stop and start again.
type testBroker struct {
	t    testing.TB
	addr string
	opts broker.Options
	tls  *tls.Config // serve wss:// with it, when set

	mu  sync.Mutex
	b   *broker.Broker
	srv *http.Server
}

func quietLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newTestBroker(t testing.TB, opts broker.Options) *testBroker {
	t.Helper()
	return newTestBrokerTLS(t, opts, nil)
}

// newTestBrokerTLS is newTestBroker serving wss:// with cfg (ws:// when
// it is nil).
func newTestBrokerTLS(t testing.TB, opts broker.Options, cfg *tls.Config) *testBroker {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger(t)
	}
	tb := &testBroker{t: t, opts: opts, addr: "127.0.0.1:0", tls: cfg}
	tb.start()
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBroker) url() string {
	if tb.tls != nil {
		return "wss://" + tb.addr + "/ws"
	}
	return "ws://" + tb.addr + "/ws"
}

// start runs a new broker on the address (the same port after a restart).
func (tb *testBroker) start() {
	tb.t.Helper()
	b, err := broker.New(tb.opts)
	if err != nil {
		tb.t.Fatal(err)
	}
	var ln net.Listener
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", tb.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // the old listener's port is being released
	}
	if err != nil {
		tb.t.Fatal(err)
	}
	tb.addr = ln.Addr().String()
	if tb.tls != nil {
		ln = tls.NewListener(ln, tb.tls)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.mu.Lock()
	tb.b, tb.srv = b, srv
	tb.mu.Unlock()
}

// stop shuts the broker down gracefully.
func (tb *testBroker) stop() {
	tb.mu.Lock()
	b, srv := tb.b, tb.srv
	tb.b, tb.srv = nil, nil
	tb.mu.Unlock()
	if b == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = b.Shutdown(ctx)
}

func (tb *testBroker) broker() *broker.Broker {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return tb.b
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, 5*time.Millisecond, what, cond)
}

// proxy is a TCP proxy that can cut its connections or black-hole them
// (keep them open, forward nothing).
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	pairs []*pair
	holes []*pair // black-holed, closed at the end
	wg    sync.WaitGroup
	gated atomic.Bool // refuse new connections
}

type pair struct {
	in, out net.Conn
	hole    atomic.Bool
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) url() string { return "ws://" + p.ln.Addr().String() + "/ws" }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.gated.Load() {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		pr := &pair{in: in, out: out}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pr, in, out)
		go p.pipe(pr, out, in)
	}
}

// pipe copies until an error; a black-holed pair reads and discards.
func (p *proxy) pipe(pr *pair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			_ = dst.Close()
			return
		}
		if pr.hole.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			_ = src.Close()
			return
		}
	}
}

func (p *proxy) take() []*pair {
	p.mu.Lock()
	defer p.mu.Unlock()
	pairs := p.pairs
	p.pairs = nil
	return pairs
}

// cut closes every proxied connection.
func (p *proxy) cut() {
	for _, pr := range p.take() {
		_ = pr.in.Close()
		_ = pr.out.Close()
	}
}

// blackhole stops forwarding on the current connections, which stay open;
// connections made afterwards forward normally.
func (p *proxy) blackhole() []*pair {
	pairs := p.take()
	for _, pr := range pairs {
		pr.hole.Store(true)
	}
	p.mu.Lock()
	p.holes = append(p.holes, pairs...)
	p.mu.Unlock()
	return pairs
}

func (p *proxy) close() {
	_ = p.ln.Close()
	p.cut()
	p.mu.Lock()
	holes := p.holes
	p.mu.Unlock()
	for _, pr := range holes {
		_ = pr.in.Close()
		_ = pr.out.Close()
	}
	p.wg.Wait()
}
