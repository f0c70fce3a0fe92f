package broker_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/broker"
)

// mask is the masking key of the hostile frames below (on the wire as is).
var mask = []byte{1, 2, 3, 4}

func header(b0, b1 byte, ext ...byte) []byte {
	h := append([]byte{b0, b1}, ext...)
	if b1&0x80 != 0 {
		h = append(h, mask...)
	}
	return h
}

// masked is a masked frame with header bytes b0 and the payload's length.
func masked(b0 byte, payload []byte) []byte {
	h := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n <= 0xffff:
		h = append(h, 0x80|126, byte(n>>8), byte(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), uint64(n))
	}
	h = append(h, mask...)
	for i, c := range payload {
		h = append(h, c^mask[i%4])
	}
	return h
}

// hostileFrames are byte sequences that RFC 6455 forbids, each with the
// close code and reason the broker answers with.
var hostileFrames = []struct {
	name   string
	bytes  []byte
	code   int
	reason string
}{
	// the 14 bytes that once crashed the process: FIN+binary, masked,
	// 64-bit length with its top bit set
	{"64-bit length with the top bit set", header(0x82, 0x80|127, 0x80, 0, 0, 0, 0, 0, 0, 1), 1002, "most significant bit"},
	{"64-bit length of 2^64-1", header(0x81, 0x80|127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 1002, "most significant bit"},
	{"ping longer than 125 bytes", masked(0x89, bytes.Repeat([]byte("p"), 200)), 1002, "control frame longer than 125"},
	{"close longer than 125 bytes", masked(0x88, bytes.Repeat([]byte("c"), 126)), 1002, "control frame longer than 125"},
	{"fragmented ping", masked(0x09, nil), 1002, "fragmented control frame"},
	{"reserved opcode 3", masked(0x83, []byte("x")), 1002, "reserved opcode 3"},
	{"reserved opcode 11", masked(0x8b, nil), 1002, "reserved opcode 11"},
	{"RSV1 without an extension", masked(0xc1, []byte(`{}`)), 1002, "RSV1"},
	{"RSV2", masked(0xa1, []byte(`{}`)), 1002, "RSV2/RSV3"},
	{"RSV3", masked(0x91, []byte(`{}`)), 1002, "RSV2/RSV3"},
	{"unmasked frame", []byte{0x81, 2, '{', '}'}, 1002, "unmasked frame from a client"},
	{"continuation with no message", masked(0x80, []byte("x")), 1002, "continuation frame with no message"},
	{"data frame inside a fragmented message", append(masked(0x01, []byte(`{"op":`)), masked(0x81, []byte(`{}`))...), 1002, "before the fragmented message ended"},
	{"fragments over the frame limit", append(masked(0x01, bytes.Repeat([]byte("a"), 700)), masked(0x80, bytes.Repeat([]byte("a"), 700))...), 1009, "over the limit of 1024"},
	{"one frame over the frame limit, header only", header(0x81, 0x80|127, 0, 0, 0, 0, 0x40, 0, 0, 0), 1009, "over the limit of 1024"},
}

// Every hostile header closes its own connection with the code RFC 6455
// asks for and a reason, before gws parses it; the broker and its other
// connections go on.
func TestHostileFrameHeaders(t *testing.T) {
	b, url := startBroker(t, broker.Options{MaxFrameBytes: 1024})
	other := dial(t, url)
	other.mustAck(map[string]any{"op": "sub", "topic": "alive"})
	for i, tc := range hostileFrames {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, url, "")
			if _, err := r.nc.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			code, reason := readClose(t, r)
			if code != tc.code || !strings.Contains(reason, tc.reason) {
				t.Fatalf("closed with %d %q, want %d with %q", code, reason, tc.code, tc.reason)
			}
			other.mustAck(map[string]any{"op": "pub", "topic": "alive", "data": i})
			if f := other.expect("msg"); f["data"] != float64(i) {
				t.Fatalf("other connection got %v", f)
			}
		})
	}
	eventually(t, "every refusal counted", func() bool { return b.Stats().ProtocolErrors == uint64(len(hostileFrames)) })
	if p := b.Stats().Panics; p != 0 {
		t.Fatalf("%d panics", p)
	}
}

// A truncated frame, or a header alone followed by the peer leaving,
// affects no one else.
func TestTruncatedFrames(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	other := dial(t, url)
	for _, p := range [][]byte{
		{0x81},
		{0x81, 0x80 | 126, 0x01},
		header(0x81, 0x80|127, 0, 0, 0, 0, 0, 0, 0x01, 0),
		masked(0x81, []byte(`{"op":"ping"}`))[:10],
	} {
		r := dialRaw(t, url, "")
		if _, err := r.nc.Write(p); err != nil {
			t.Fatal(err)
		}
		_ = r.nc.Close()
	}
	other.alive()
}

// With the checker off, the headline header panics gws's read loop: the
// panic is recovered, that connection is closed with 1011 and the panic
// counted, and the broker goes on.
func TestReadLoopPanicRecovered(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	broker.UncheckFrames(b)
	other := dial(t, url)
	other.mustAck(map[string]any{"op": "sub", "topic": "alive"})
	r := dialRaw(t, url, "")
	if _, err := r.nc.Write(hostileFrames[0].bytes); err != nil {
		t.Fatal(err)
	}
	if code, reason := readClose(t, r); code != 1011 || reason != "internal error" {
		t.Fatalf("closed with %d %q, want 1011 internal error", code, reason)
	}
	eventually(t, "the panic counted", func() bool { return b.Stats().Panics == 1 })
	other.mustAck(map[string]any{"op": "pub", "topic": "alive", "data": 1})
	other.expect("msg")
	eventually(t, "the connection released", func() bool { return b.Stats().Connections == 1 })
}

// readClose reads frames until the close frame and returns its code and
// reason.
func readClose(t *testing.T, r *rawClient) (int, string) {
	t.Helper()
	for {
		op, p, err := r.read()
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		if op == 0x8 {
			if len(p) < 2 {
				t.Fatalf("close frame without a code: %q", p)
			}
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}
