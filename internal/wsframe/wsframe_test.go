package wsframe_test

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/lxzan/gws"
)

type sink struct {
	gws.BuiltinEventHandler
	got chan []byte
}

func (s *sink) OnMessage(_ *gws.Conn, m *gws.Message) {
	s.got <- bytes.Clone(m.Bytes())
	m.Close()
}

// gws, as a server, reads frames written together in one write back as the
// messages they carry, whatever their length (7-bit, 16-bit and 64-bit
// length forms) and key.
func TestGWSReadsMaskedFrames(t *testing.T) {
	s := &sink{got: make(chan []byte, 64)}
	up := gws.NewUpgrader(s, &gws.ServerOption{ReadMaxPayloadSize: 1 << 20})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var want [][]byte
	var wire []byte
	for _, n := range []int{0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 200000} {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want = append(want, p)
		wire = wsframe.AppendMasked(wire, 0x2, rng.Uint32(), p)
	}
	if _, err := nc.Write(wire); err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		select {
		case got := <-s.got:
			if !bytes.Equal(got, w) {
				t.Fatalf("message %d (%d bytes) differs", i, len(w))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d of %d not received", i, len(want))
		}
	}
}
