package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil"
)

// clientTransportSeeds are frames a server might send: valid ones,
// truncated ones, huge lengths and fragment mixes.
func clientTransportSeeds() [][]byte {
	msg := []byte(`{"op":"msg","topic":"fuzz/a","data":{"n":1}}`)
	frame := func(b0 byte, p []byte) []byte {
		if len(p) > 125 {
			panic("seed too long")
		}
		return append([]byte{b0, byte(len(p))}, p...)
	}
	cat := func(fs ...[]byte) []byte {
		var out []byte
		for _, f := range fs {
			out = append(out, f...)
		}
		return out
	}
	return [][]byte{
		frame(0x81, msg),
		cat(frame(0x81, []byte(`{"op":"session","session":"s","resumed":false}`)), frame(0x81, msg), frame(0x89, []byte("p"))),
		frame(0x81, []byte(`{"op":"ack","id":1}`)),
		frame(0x81, []byte(`{"op":"err","code":"bad_frame","reason":"x"}`)),
		frame(0x82, []byte{0x83, 0xa2, 'o', 'p', 0xa3, 'm', 's', 'g', 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'x', 0xa4, 'd', 'a', 't', 'a', 0xc0}),
		frame(0x81, msg)[:7],
		{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1},
		{0x82, 127, 0, 0, 0, 0, 0x7f, 0, 0, 0},
		cat(frame(0x01, msg[:10]), frame(0x89, nil), frame(0x80, msg[10:])),
		cat(frame(0x01, msg[:10]), frame(0x81, msg)),
		frame(0x88, []byte{3, 0xe8, 'b', 'y', 'e'}),
		frame(0x88, []byte{0xff}),
		frame(0x81, []byte("{\"op\":\"msg\",\"topic\":\"a\",\"data\":\"\xff\"}")),
		{0x81, 0x82, 1, 2, 3, 4, 'a', 'b'},
	}
}

// FuzzClientTransport has a server on 127.0.0.1 complete a real handshake
// with the client and then send arbitrary bytes; the client must survive
// it: the process is alive, a well-behaved client of a real broker in the
// same process still round-trips a message, and memory stays bounded.
func FuzzClientTransport(f *testing.F) {
	for _, s := range clientTransportSeeds() {
		f.Add(s)
	}
	quiet := slog.New(slog.DiscardHandler)
	tb := newTestBroker(f, broker.Options{Logger: quiet})
	good, err := client.Connect(context.Background(), tb.url(), client.WithLogger(quiet))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = good.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ln.Close() })
	url := "ws://" + ln.Addr().String() + "/ws"
	mem := testutil.NewHeapBound(256 << 20)
	f.Fuzz(func(t *testing.T, in []byte) {
		served := make(chan struct{})
		go func() {
			defer close(served)
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			// the response and the bytes, then the end of the stream; what
			// the client answers is read until it closes
			if handshake(nc, in) == nil {
				_ = nc.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, nc)
			}
		}()
		ended := make(chan struct{}, 1)
		c, err := client.Connect(context.Background(), url, client.WithLogger(quiet), client.WithMaxReconnects(1),
			client.WithReconnect(time.Hour, time.Hour, 2),
			client.OnStatus(func(st client.Status, _ error) {
				if st == client.Disconnected || st == client.Closed {
					select {
					case ended <- struct{}{}:
					default:
					}
				}
			}))
		if err != nil {
			t.Fatalf("handshake with the server failed: %v", err)
		}
		<-served // the server closed the connection: the client read all of it
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatal("the client did not notice the connection end")
		}
		_ = c.Close()
		roundTrip(t, good, "alive/fuzz")
		mem.Check(t)
	})
}
