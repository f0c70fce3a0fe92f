package client_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// silentServer accepts TCP connections and never answers; it holds them
// until the test ends. accepted receives each one as it comes.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String(), ch
}

// Connect's ctx bounds the WebSocket handshake too (gws would otherwise
// wait for its own handshake timeout, DialTimeout: 5 s): a server that
// accepts the connection and never answers does not hold Connect past the
// ctx's deadline, nor past its cancellation.
func TestConnectCtxBoundsHandshake(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		addr, _ := silentServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := client.Connect(ctx, "ws://"+addr+"/ws")
		el := time.Since(start)
		if err == nil {
			t.Fatal("Connect to a silent server succeeded")
		}
		if el > 2*time.Second {
			t.Fatalf("Connect with a 200ms ctx took %v: %v", el, err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		addr, accepted := silentServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			_, err := client.Connect(ctx, "ws://"+addr+"/ws")
			errc <- err
		}()
		select {
		case <-accepted: // in the handshake now
		case <-time.After(waitTimeout):
			t.Fatal("the server accepted no connection")
		}
		cancel()
		select {
		case err := <-errc:
			if err == nil {
				t.Fatal("Connect to a silent server succeeded")
			}
		case <-time.After(waitTimeout):
			t.Fatal("Connect went on in the handshake after its ctx was cancelled")
		}
	})
}

// freezeProxy forwards until frozen, then stops reading from the client.
type freezeProxy struct {
	ln     net.Listener
	frozen atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fp := &freezeProxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			go func() { _, _ = io.Copy(in, out); in.Close() }()
			go func() {
				buf := make([]byte, 4096)
				for {
					for fp.frozen.Load() {
						time.Sleep(10 * time.Millisecond) // polls for the thaw
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

// A request (Subscribe) whose frame waits behind a write stuck on a peer
// that does not read still ends with its ctx.
func TestSubscribeCtxBoundsStuckWrite(t *testing.T) {
	tb := newTestBroker(t, broker.Options{MaxFrameBytes: 1 << 20})
	ctx := context.Background()
	fp := newFreezeProxy(t, tb.addr)
	c := connect(t, "ws://"+fp.ln.Addr().String()+"/ws", client.WithPing(2*time.Second, time.Second), client.WithPublishBuffer(10000, 64<<20))
	fp.frozen.Store(true)
	big := strings.Repeat("x", 60<<10)
	for i := 0; i < 300; i++ { // ~18 MB of fire-and-forget: the socket fills, writeLoop blocks
		_ = c.PublishNoAck(ctx, "t", big)
	}
	// a gap, not a condition: nothing outside the client shows its writer
	// blocked; 300 ms is ample to fill the socket buffers (checked below)
	time.Sleep(300 * time.Millisecond)
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Subscribe(sctx, "s", func(*client.Message) error { return nil })
	el := time.Since(start)
	if err == nil {
		t.Fatal("Subscribe succeeded through a frozen connection")
	}
	if el > time.Second {
		t.Errorf("Subscribe blocked %v past its 300ms ctx on a stuck write: %v", el, err)
	}
	if n, _ := c.Buffered(); n == 0 {
		t.Fatal("the write never got stuck: every publish was sent")
	}
	fp.frozen.Store(false)
	fp.ln.Close()
}
