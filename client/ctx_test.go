package client_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// freezeProxy forwards until frozen, then stops reading from the client.
type freezeProxy struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	fp := &freezeProxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, _ := net.Dial("tcp", target)
			go func() { _, _ = io.Copy(in, out); in.Close() }()
			go func() {
				buf := make([]byte, 4096)
				for {
					for fp.frozen.Load() {
						time.Sleep(10 * time.Millisecond)
					}
					n, err := in.Read(buf)
					if err != nil {
						out.Close()
						return
					}
					out.Write(buf[:n])
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return fp
}

func TestRegressionRequestIgnoresCtxOnStuckWrite(t *testing.T) {
	tb := newTestBroker(t, broker.Options{MaxFrameBytes: 1 << 20})
	ctx := context.Background()
	fp := newFreezeProxy(t, tb.addr)
	c := connect(t, "ws://"+fp.ln.Addr().String()+"/ws", client.WithPing(2*time.Second, time.Second), client.WithPublishBuffer(10000, 64<<20))
	fp.frozen.Store(true)
	big := strings.Repeat("x", 60<<10)
	for i := 0; i < 300; i++ { // ~18 MB of fire-and-forget: the socket fills, writeLoop blocks
		_ = c.PublishNoAck(ctx, "t", big)
	}
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Subscribe(sctx, "s", func(*client.Message) error { return nil })
	el := time.Since(start)
	t.Logf("Subscribe with a 300ms ctx returned after %v: %v", el.Round(time.Millisecond), err)
	if el > time.Second {
		t.Errorf("Subscribe blocked %v past its ctx on a stuck write", el)
	}
	fp.frozen.Store(false)
	fp.ln.Close()
}
