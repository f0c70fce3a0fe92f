package broker_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"net"

	"github.com/ferry-io/ferry/broker"
)

// Shutdown returns when its ctx ends even while a connection's reader is
// parked in the middle of a frame, waiting for room in the queue of a peer
// that reads nothing; then it cuts the connections.
func TestShutdownHonoursCtxWithParkedReader(t *testing.T) {
	b, err := broker.New(broker.Options{QueueBytes: 1024, WriteTimeout: time.Minute, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// the broker's sockets have small send buffers, so that a peer that
	// reads nothing stops its writer for good
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(smallSendBuffers{ln}) }()
	defer srv.Close()
	addr := ln.Addr().String()

	// a client that sends requests and never reads the replies, with a
	// small receive buffer so that the broker's socket fills soon
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ping := masked(0x81, []byte(`{"op":"ping","id":123456789}`))
	batch := bytes.Repeat(ping, 1000)
	go func() {
		for i := 0; i < 400; i++ { // 400k requests at most: far more than the socket buffers hold
			if _, err := nc.Write(batch); err != nil {
				return
			}
		}
	}()
	// the reader is parked for good once its goroutine waits in sendFrame
	// for room while the writer waits in a socket write (on a peer that
	// reads nothing)
	eventually(t, "the reader parked on a full queue", func() bool {
		buf := make([]byte, 1<<20)
		var reader, writer bool
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			reader = reader || strings.Contains(g, "[chan receive") && strings.Contains(g, "(*conn).sendFrame")
			writer = writer || strings.Contains(g, "[IO wait") && strings.Contains(g, "(*conn).writeLoop")
		}
		return reader && writer
	})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- b.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want the ctx's deadline", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown did not return after its ctx ended")
	}
}

type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}
