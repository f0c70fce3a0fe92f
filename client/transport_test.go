package client_test

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
)

// hostileServer accepts WebSocket handshakes on 127.0.0.1 and answers
// each with the bytes of frames, then reads what the client sends back.
type hostileServer struct {
	ln     net.Listener
	frames []byte
	wg     sync.WaitGroup
	closes chan []byte // the payloads of the close frames clients sent
}

func newHostileServer(t testing.TB, frames []byte) *hostileServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &hostileServer{ln: ln, frames: frames, closes: make(chan []byte, 64)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { _ = ln.Close(); s.wg.Wait() })
	return s
}

func (s *hostileServer) url() string { return "ws://" + s.ln.Addr().String() + "/ws" }

func (s *hostileServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer nc.Close()
			s.serve(nc)
		}()
	}
}

func (s *hostileServer) serve(nc net.Conn) {
	if err := handshake(nc, s.frames); err != nil {
		return
	}
	br := bufio.NewReader(nc)
	// what the client answers: masked frames, until its close frame
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<20 {
			return
		}
		var key [4]byte
		if hdr[1]&0x80 != 0 {
			if _, err := io.ReadFull(br, key[:]); err != nil {
				return
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		for i := range p {
			p[i] ^= key[i%4]
		}
		if hdr[0]&0x0f == 0x8 {
			select {
			case s.closes <- p:
			default:
			}
			return
		}
	}
}

// handshake reads a WebSocket upgrade request from nc and answers it,
// writing frames right after the response, in the same write (the client
// reads them together).
func handshake(nc net.Conn, frames []byte) error {
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	req, err := http.ReadRequest(bufio.NewReader(nc)) // the client waits for the answer: nothing is read past the request
	if err != nil {
		return err
	}
	h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n"
	if p := req.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		resp += "Sec-WebSocket-Protocol: " + strings.TrimSpace(strings.Split(p, ",")[0]) + "\r\n"
	}
	_, err = nc.Write(append([]byte(resp+"\r\n"), frames...))
	return err
}

// hostileServerFrames are frames a server must not send, with the close
// code and reason the client answers with.
var hostileServerFrames = []struct {
	name   string
	bytes  []byte
	code   int
	reason string
}{
	{"64-bit length with the top bit set", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, 1002, "most significant bit"},
	{"masked frame", []byte{0x81, 0x80 | 2, 1, 2, 3, 4, 'a', 'b'}, 1002, "masked frame from a server"},
	{"ping longer than 125 bytes", append([]byte{0x89, 126, 0, 200}, make([]byte, 200)...), 1002, "control frame longer than 125"},
	{"fragmented close", []byte{0x08, 0}, 1002, "fragmented control frame"},
	{"reserved opcode 4", []byte{0x84, 0}, 1002, "reserved opcode 4"},
	{"RSV1 without an extension", []byte{0xc1, 2, '{', '}'}, 1002, "RSV1"},
	{"continuation with no message", []byte{0x80, 1, 'x'}, 1002, "continuation frame with no message"},
	{"data frame inside a fragmented message", []byte{0x01, 1, '{', 0x81, 2, '{', '}'}, 1002, "before the fragmented message ended"},
	{"a message over 64 MiB announced", []byte{0x82, 127, 0, 0, 0, 0, 0x10, 0, 0, 0}, 1009, "over the limit"},
}

// A server that sends a frame RFC 6455 forbids gets a close frame with the
// code and reason, the client reports it and reconnects, and the process
// and the client's other connections go on.
func TestHostileServerFrames(t *testing.T) {
	tb := newTestBroker(t, broker.Options{})
	good, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	for _, tc := range hostileServerFrames {
		t.Run(tc.name, func(t *testing.T) {
			s := newHostileServer(t, tc.bytes)
			errs := make(chan error, 16)
			c, err := client.Connect(context.Background(), s.url(), client.WithLogger(quietLogger(t)),
				client.WithReconnect(time.Millisecond, 5*time.Millisecond, 2),
				client.OnStatus(func(st client.Status, err error) {
					if st == client.Disconnected && err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var p []byte
			select {
			case p = <-s.closes:
			case <-time.After(5 * time.Second):
				t.Fatal("the client sent no close frame")
			}
			if len(p) < 2 || int(binary.BigEndian.Uint16(p)) != tc.code || !strings.Contains(string(p[2:]), tc.reason) {
				t.Fatalf("client closed with %q, want %d with %q", p, tc.code, tc.reason)
			}
			select {
			case err := <-errs:
				if !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("disconnected with %v, want the reason %q", err, tc.reason)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no disconnect reported")
			}
			// it reconnects (to the same hostile server, which refuses again)
			select {
			case <-s.closes:
			case <-time.After(5 * time.Second):
				t.Fatal("the client did not reconnect")
			}
			roundTrip(t, good, "alive/"+strings.ReplaceAll(tc.name, " ", "-"))
		})
	}
}

// With the checker off, the headline frame panics gws's read loop in the
// client: the panic is recovered and reported, the connection ends, and the
// process goes on.
func TestClientReadLoopPanicRecovered(t *testing.T) {
	defer client.UncheckFrames()()
	tb := newTestBroker(t, broker.Options{})
	s := newHostileServer(t, hostileServerFrames[0].bytes)
	errs := make(chan error, 16)
	c, err := client.Connect(context.Background(), s.url(), client.WithLogger(quietLogger(t)),
		client.WithReconnect(50*time.Millisecond, 100*time.Millisecond, 2),
		client.OnError(func(err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "internal error in the read loop") {
			t.Fatalf("reported %v, want the recovered panic", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no panic reported")
	}
	good, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quietLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	roundTrip(t, good, "alive")
}

// roundTrip subscribes c to topic, publishes on it and waits for the
// message.
func roundTrip(t testing.TB, c *client.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan struct{}, 1)
	sub, err := c.Subscribe(ctx, topic, func(*client.Message) error {
		select {
		case got <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe(ctx) }()
	if err := c.Publish(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal(errors.New("round trip: no message"))
	}
}
