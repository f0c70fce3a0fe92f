package broker_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	sdk "github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil"
)

// transportSeeds are the seed inputs of FuzzBrokerTransport: valid frames,
// truncated ones, huge lengths and fragment mixes.
func transportSeeds() [][]byte {
	pub := []byte(`{"op":"pub","topic":"fuzz/a","data":{"n":1},"id":1}`)
	sub := []byte(`{"op":"sub","topic":"fuzz/#","id":2,"ack":true}`)
	mp := []byte{0x83, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa4, 'd', 'a', 't', 'a', 0x01}
	cat := func(fs ...[]byte) []byte {
		var out []byte
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	return [][]byte{
		masked(0x81, pub),
		cat(masked(0x81, sub), masked(0x81, pub), masked(0x89, []byte("hi"))),
		masked(0x82, mp),
		masked(0x81, pub)[:9],
		header(0x82, 0x80|127, 0x80, 0, 0, 0, 0, 0, 0, 1),
		header(0x81, 0x80|127, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff),
		header(0x81, 0x80|126, 0xff, 0xff),
		cat(masked(0x01, pub[:10]), masked(0x89, nil), masked(0x00, pub[10:20]), masked(0x80, pub[20:])),
		cat(masked(0x01, pub[:10]), masked(0x81, pub)),
		cat(masked(0x00, pub), masked(0x88, []byte{3, 232})),
		masked(0x88, []byte{0xff}),
		masked(0x88, []byte{3, 0xe8, 0xff, 0xfe}),
		masked(0x81, []byte("{\"op\":\"pub\",\"topic\":\"a\",\"data\":\"\xff\"}")),
		masked(0xc1, pub),
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	}
}

// FuzzBrokerTransport writes arbitrary bytes to an in-process broker after
// a real WebSocket handshake on 127.0.0.1, then checks that the process is
// alive, that a well-behaved client still round-trips a message, that the
// connection was released and that memory stays bounded.
func FuzzBrokerTransport(f *testing.F) {
	for i, s := range transportSeeds() {
		f.Add(uint8(i%3), s)
	}
	b, err := broker.New(broker.Options{MaxFrameBytes: 64 << 10, Logger: quietBrokerLogger()})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	addr, srv := testutil.Serve(f, mux)
	url := "ws://" + addr + "/ws"
	ctx := context.Background()
	good, err := sdk.Connect(ctx, url, sdk.WithLogger(quietBrokerLogger()))
	if err != nil {
		f.Fatal(err)
	}
	rt := newRoundTripper(f, good)
	f.Cleanup(func() {
		_ = good.Close()
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = b.Shutdown(sctx)
	})
	mem := testutil.NewHeapBound(256 << 20)
	f.Fuzz(func(t *testing.T, codec uint8, in []byte) {
		nc, err := rawHandshake(addr, []string{"", "ferry.v1.json", "ferry.v1.msgpack"}[codec%3])
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = nc.Write(in) // the broker may have closed already
		_ = nc.Close()
		if err := rt.roundTrip(); err != nil {
			t.Fatalf("after %d hostile bytes: %v", len(in), err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.Stats().Connections > 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections still open, want only the well-behaved one", b.Stats().Connections)
			}
			time.Sleep(time.Millisecond)
		}
		mem.Check(t)
		if p := b.Stats().Panics; p != 0 {
			t.Fatalf("%d panics recovered", p)
		}
	})
}

// rawHandshake opens a WebSocket connection by hand, offering protocol
// (none if empty), and returns the socket after the 101 response.
func rawHandshake(addr, protocol string) (net.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if protocol != "" {
		req += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if _, err := nc.Write([]byte(req + "\r\n")); err != nil {
		nc.Close()
		return nil, err
	}
	// read the response byte by byte, so that nothing after it is consumed
	var resp []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(resp), "\r\n\r\n") {
		if _, err := nc.Read(one); err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		resp = append(resp, one[0])
	}
	r, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(resp))), nil)
	if err != nil || r.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return nil, fmt.Errorf("handshake: %v %v", r, err)
	}
	return nc, nil
}

// roundTripper publishes on a topic of its own with a client subscribed to
// it and waits for each message.
type roundTripper struct {
	c   *sdk.Client
	n   atomic.Int64
	mu  sync.Mutex
	got chan int64
}

func newRoundTripper(tb testing.TB, c *sdk.Client) *roundTripper {
	rt := &roundTripper{c: c, got: make(chan int64, 16)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, "alive/roundtrip", func(m *sdk.Message) error {
		var n int64
		if m.Decode(&n) == nil {
			select {
			case rt.got <- n:
			default:
			}
		}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return rt
}

func (rt *roundTripper) roundTrip() error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	n := rt.n.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.c.Publish(ctx, "alive/roundtrip", n); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	for {
		select {
		case got := <-rt.got:
			if got == n {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("message %d did not come back", n)
		}
	}
}

// quietBrokerLogger drops the logs of the thousands of hostile connections
// a fuzz run makes (recovered panics are counted and checked instead).
func quietBrokerLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
