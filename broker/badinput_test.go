package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/vmihailenco/msgpack/v5"
)

func mp(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBadInput sends each bad frame on a connection of each codec and
// checks the err frame, that the connection goes on, and that another
// client's traffic is unaffected.
func TestBadInput(t *testing.T) {
	long := strings.Repeat("x", 300)
	cases := []struct {
		name   string
		frame  func(t *testing.T) any // string: text frame, []byte: binary frame
		code   string
		reason string // substring of the reason
		id     float64
	}{
		{"malformed json", txt(`{"op":"pub","topic":"a","data":`), "bad_frame", "invalid JSON", 0},
		{"json array", txt(`[1,2]`), "bad_frame", "not a JSON object", 0},
		{"json string", txt(`"hello"`), "bad_frame", "not a JSON object", 0},
		{"empty text", txt(``), "bad_frame", "empty frame", 0},
		{"trailing garbage", txt(`{"op":"ping"} x`), "bad_frame", "after the object", 0},
		{"unknown op", txt(`{"op":"fly","id":4}`), "unknown_op", `"fly"`, 4},
		{"broker op from client", txt(`{"op":"msg","topic":"a","data":1}`), "unknown_op", `"msg"`, 0},
		{"missing op", txt(`{"topic":"a"}`), "bad_frame", `"op"`, 0},
		{"sub without topic", txt(`{"op":"sub","id":2}`), "bad_frame", `"topic"`, 2},
		{"pub without data", txt(`{"op":"pub","topic":"a"}`), "bad_frame", `"data"`, 0},
		{"ack without mid", txt(`{"op":"ack"}`), "bad_frame", `"mid"`, 0},
		{"topic not a string", txt(`{"op":"sub","topic":5,"id":3}`), "bad_frame", `"topic"`, 3},
		{"id is a string", txt(`{"op":"pub","topic":"a","data":1,"id":"x"}`), "bad_frame", `"id"`, 0},
		{"negative id", txt(`{"op":"ping","id":-1}`), "bad_frame", `"id"`, 0},
		{"fractional id", txt(`{"op":"ping","id":1.5}`), "bad_frame", `"id"`, 0},
		{"ack flag not bool", txt(`{"op":"sub","topic":"a","ack":"yes","id":6}`), "bad_frame", `"ack"`, 6},
		{"wildcard in pub", txt(`{"op":"pub","topic":"a/+","data":1,"id":12}`), "bad_topic", "wildcard", 12},
		{"hash in pub", txt(`{"op":"pub","topic":"a/#","data":1}`), "bad_topic", "wildcard", 0},
		{"empty level", txt(`{"op":"pub","topic":"a//b","data":1}`), "bad_topic", "empty level", 0},
		{"leading slash", txt(`{"op":"sub","topic":"/a"}`), "bad_topic", "empty level", 0},
		{"empty topic", txt(`{"op":"sub","topic":""}`), "bad_frame", `"topic"`, 0},
		{"hash not last", txt(`{"op":"sub","topic":"a/#/b"}`), "bad_topic", "last level", 0},
		{"partial wildcard", txt(`{"op":"sub","topic":"a/b+"}`), "bad_topic", "whole level", 0},
		{"topic too long", txt(`{"op":"sub","topic":"` + long + `"}`), "bad_topic", "over the limit of 256", 0},
		{"unsub bad filter", txt(`{"op":"unsub","topic":"a/#/b"}`), "bad_topic", "last level", 0},
		{"too deep data", txt(`{"op":"pub","topic":"a","data":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`), "bad_frame", "nested deeper", 0},
		{"msgpack garbage", bin([]byte{0xc1, 0xff, 0x00}), "bad_frame", "not a msgpack map", 0},
		{"msgpack array", func(t *testing.T) any { return mp(t, []any{"op", "pub"}) }, "bad_frame", "not a msgpack map", 0},
		{"msgpack int key", bin([]byte{0x81, 0x01, 0x02}), "bad_frame", "expected a string", 0},
		{"msgpack truncated", bin([]byte{0x83, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b'}), "bad_frame", "truncated", 0},
		{"msgpack unknown op", func(t *testing.T) any { return mp(t, map[string]any{"op": "fly", "id": 8}) }, "unknown_op", `"fly"`, 8},
		{"msgpack topic type", func(t *testing.T) any { return mp(t, map[string]any{"op": "sub", "topic": []byte("a")}) }, "bad_frame", `"topic"`, 0},
		{"msgpack wildcard pub", func(t *testing.T) any {
			return mp(t, map[string]any{"op": "pub", "topic": "+", "data": 1, "id": 9})
		}, "bad_topic", "wildcard", 9},
		{"msgpack trailing bytes", func(t *testing.T) any { return append(mp(t, map[string]any{"op": "ping"}), 0x00) }, "bad_frame", "after the map", 0},
	}
	for _, cd := range codecs {
		t.Run(cd.name, func(t *testing.T) {
			b, url := startBroker(t, broker.Options{})
			c := dial(t, url, cd.protocol...)
			other := dial(t, url)
			other.mustAck(map[string]any{"op": "sub", "topic": "other"})
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c.send(tc.frame(t))
					f := c.expectErr(tc.code)
					if !strings.Contains(f["reason"].(string), tc.reason) {
						t.Fatalf("reason %q does not mention %q", f["reason"], tc.reason)
					}
					id, hasID := f.num("id")
					if tc.id != 0 && (!hasID || id != uint64(tc.id)) {
						t.Fatalf("err id %v, want %v", f["id"], tc.id)
					}
					if tc.id == 0 && hasID {
						t.Fatalf("err carries id %v for a request without one", f["id"])
					}
					c.alive()
					other.mustAck(map[string]any{"op": "pub", "topic": "other", "data": tc.name})
					if f := other.expect("msg"); f["data"] != tc.name {
						t.Fatalf("other client got %v", f)
					}
				})
			}
			if got := b.Stats().BadFrames; got == 0 {
				t.Fatalf("BadFrames = 0 after %d bad frames", len(cases))
			}
		})
	}
}

func txt(s string) func(*testing.T) any { return func(*testing.T) any { return s } }
func bin(b []byte) func(*testing.T) any { return func(*testing.T) any { return b } }

func TestUnknownKeysIgnored(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	c := dial(t, url)
	c.mustAck(map[string]any{"op": "sub", "topic": "k", "future": map[string]any{"x": []any{1, 2}}, "n": nil})
	c.send(`{"op":"pub","topic":"k","data":{"a":1},"later":[true,{"deep":null}],"group":null,"id":3}`)
	if f := c.expect("msg"); f["topic"] != "k" {
		t.Fatalf("got %v", f)
	}
	if f := c.expect("ack"); f["id"] != float64(3) {
		t.Fatalf("got %v", f)
	}
}

func TestOversizeFrameCloses1009(t *testing.T) {
	_, url := startBroker(t, broker.Options{MaxFrameBytes: 1024})
	c := dial(t, url)
	other := dial(t, url)
	other.mustAck(map[string]any{"op": "sub", "topic": "t"})
	c.send(`{"op":"pub","topic":"t","data":"` + strings.Repeat("x", 2000) + `"}`)
	if ci := c.waitClosed(); ci.code != 1009 {
		t.Fatalf("closed with %d %q, want 1009", ci.code, ci.reason)
	}
	// a frame at the limit is fine, and other clients go on
	other.mustAck(map[string]any{"op": "pub", "topic": "t", "data": strings.Repeat("y", 900)})
	other.expect("msg")
}

func TestOversizeHeaderDoesNotAllocate(t *testing.T) {
	// a header announcing 1 GiB is refused before any payload arrives
	_, url := startBroker(t, broker.Options{})
	r := dialRaw(t, url, "")
	hdr := []byte{0x81, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0, 1, 2, 3, 4}
	if _, err := r.nc.Write(hdr); err != nil {
		t.Fatal(err)
	}
	op, p, err := r.read()
	if err != nil || op != 0x8 || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1009 {
		t.Fatalf("got opcode %x payload %q err %v, want close 1009", op, p, err)
	}
}

func TestInvalidUTF8Closes1007(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	r := dialRaw(t, url, "")
	r.send(0x1, []byte("{\"op\":\"pub\",\"topic\":\"a\",\"data\":\"\xff\xfe\"}"))
	op, p, err := r.read()
	if err != nil || op != 0x8 || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1007 {
		t.Fatalf("got opcode %x payload %q err %v, want close 1007", op, p, err)
	}
	other := dial(t, url)
	other.alive()
}

func TestSubscriptionLimit(t *testing.T) {
	_, url := startBroker(t, broker.Options{MaxSubscriptions: 2})
	c := dial(t, url)
	c.mustAck(map[string]any{"op": "sub", "topic": "a"})
	c.mustAck(map[string]any{"op": "sub", "topic": "b"})
	f := c.request(map[string]any{"op": "sub", "topic": "c"}, 3)
	if f["code"] != "limit" || !strings.Contains(f["reason"].(string), "2 subscriptions") {
		t.Fatalf("got %v", f)
	}
	c.mustAck(map[string]any{"op": "unsub", "topic": "a"})
	c.mustAck(map[string]any{"op": "sub", "topic": "c"})
}

func TestAckOfUnknownMid(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	c := dial(t, url)
	for i, op := range []string{"ack", "nack"} {
		if f := c.request(map[string]any{"op": op, "mid": 5}, uint64(i+1)); f["code"] != "bad_frame" {
			t.Fatalf("%s of unknown mid: %v", op, f)
		}
	}
	f := c.request(map[string]any{"op": "sub", "topic": "a", "ack": true, "inflight": 0}, 3)
	if f["code"] != "bad_frame" || !strings.Contains(f["reason"].(string), "inflight") {
		t.Fatalf("inflight 0: %v", f)
	}
	c.alive()
}

// A client still sending a frame the broker refused (too large) gets the
// close frame, not a reset: the broker half-closes and reads what it still
// sends for a moment, so the client's writes go on and it reads 1009.
func TestOversizeFrameCloseReachesWriter(t *testing.T) {
	_, url := startBroker(t, broker.Options{MaxFrameBytes: 64 << 10})
	r := dialRaw(t, url, "")
	frame := maskedFrame(0x1, []byte(`{"op":"pub","topic":"t","data":"`+strings.Repeat("x", 200<<10)+`"}`))
	for len(frame) > 0 {
		n := min(len(frame), 8<<10)
		if _, err := r.nc.Write(frame[:n]); err != nil {
			t.Fatalf("write with %d bytes left: %v", len(frame), err)
		}
		frame = frame[n:]
		time.Sleep(2 * time.Millisecond) // the broker refuses the frame meanwhile
	}
	op, p, err := r.read()
	if err != nil || op != 0x8 || len(p) < 2 || int(p[0])<<8|int(p[1]) != 1009 {
		t.Fatalf("got opcode %x payload %q err %v, want close 1009", op, p, err)
	}
}

// Shutdown with a client that never answers the close frame takes the
// close grace once (not twice: no lingering after a plain close), and
// leaves no goroutine behind.
func TestRegressionShutdownSilentClient(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	r := dialRaw(t, url, "")
	r.send(0x1, []byte(`{"op":"ping","id":1}`))
	if _, p, err := r.read(); err != nil || !strings.Contains(string(p), "pong") {
		t.Fatalf("ping: %s %v", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1800*time.Millisecond)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown with a silent client: %v", err)
	}
}
