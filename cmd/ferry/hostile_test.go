package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// msgRecorder is a gws client that passes on the messages it receives.
type msgRecorder struct {
	gws.BuiltinEventHandler
	msgs chan string
}

func (r *msgRecorder) OnMessage(_ *gws.Conn, m *gws.Message) {
	r.msgs <- string(m.Bytes())
	m.Close()
}

// The 14-byte frame that once crashed the process, sent to the real
// binary: that connection is closed with 1002 and a reason, a connection
// made before it still round-trips, a client that is not ours connects
// after it, and /healthz counts the refusal.
func TestServeHostileFrame(t *testing.T) {
	p := startFerry(t)
	host := strings.TrimSuffix(strings.TrimPrefix(p.url, "ws://"), "/ws")

	rec := &msgRecorder{msgs: make(chan string, 16)}
	before, _, err := gws.NewClient(rec, &gws.ClientOption{Addr: p.url})
	if err != nil {
		t.Fatal(err)
	}
	defer before.NetConn().Close()
	go before.ReadLoop()
	if err := before.WriteString(`{"op":"sub","topic":"alive","id":1}`); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, rec.msgs, `"op":"ack"`)

	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	// FIN+binary, masked, 64-bit length with its top bit set, masking key
	if _, err := nc.Write([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("no close frame: %v", err)
	}
	payload := make([]byte, hdr[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil || hdr[0] != 0x88 || len(payload) < 2 {
		t.Fatalf("got frame %x %q (%v), want a close frame", hdr, payload, err)
	}
	if code, reason := binary.BigEndian.Uint16(payload), string(payload[2:]); code != 1002 || !strings.Contains(reason, "most significant bit") {
		t.Fatalf("closed with %d %q, want 1002 and the reason", code, reason)
	}

	if err := before.WriteString(`{"op":"pub","topic":"alive","data":"still here"}`); err != nil {
		t.Fatal(err)
	}
	expectMsg(t, rec.msgs, `"still here"`)

	py := pythonWithWebsockets(t)
	out, err := exec.Command(py, filepath.Join("..", "..", "examples", "python", "pubsub.py"), "--codec", "json", p.url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "'op': 'msg'") {
		t.Fatalf("python after the hostile frame: %v\n%s", err, out)
	}

	hr, err := http.Get("http://" + host + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer hr.Body.Close()
	var health struct {
		Stats struct{ ProtocolErrors, Panics uint64 }
	}
	if err := json.NewDecoder(hr.Body).Decode(&health); err != nil {
		t.Fatal(err)
	}
	if health.Stats.ProtocolErrors != 1 || health.Stats.Panics != 0 {
		t.Fatalf("healthz: %+v, want one protocol error and no panic", health.Stats)
	}
}

func expectMsg(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-ch:
			if strings.Contains(m, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no frame with %s", want)
		}
	}
}
