package wsframe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

var key = []byte{9, 8, 7, 6}

// clientFrame is a masked frame whose first byte is b0 exactly.
func clientFrame(b0 byte, payload []byte) []byte {
	f := AppendMasked(nil, 0, 0x06070809, payload)
	f[0] = b0
	return f
}

func TestCheckerAllowsValidStreams(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 70000)
	var stream []byte
	stream = append(stream, clientFrame(0x81, []byte(`{"op":"ping"}`))...)
	stream = append(stream, clientFrame(0x82, long[:300])...)
	stream = append(stream, clientFrame(0x82, long)...)
	stream = append(stream, clientFrame(0x01, []byte("ab"))...)        // a fragmented text message,
	stream = append(stream, clientFrame(0x89, []byte("ping"))...)      // a ping between its fragments,
	stream = append(stream, clientFrame(0x00, []byte("cd"))...)        // a continuation,
	stream = append(stream, clientFrame(0x80, nil)...)                 // and the last one
	stream = append(stream, clientFrame(0x8a, nil)...)                 // pong
	stream = append(stream, clientFrame(0x88, []byte{3, 232, 'o'})...) // close
	// every split of the stream into two reads
	for cut := 0; cut <= len(stream); cut += 1 + cut/50 {
		c := Checker{FromClient: true, MaxMessage: 1 << 20}
		for _, part := range [][]byte{stream[:cut], stream[cut:]} {
			if n, err := c.Scan(part); err != nil || n != len(part) {
				t.Fatalf("cut %d: Scan = %d, %v", cut, n, err)
			}
		}
	}
	// byte by byte
	c := Checker{FromClient: true}
	for i := range stream {
		if n, err := c.Scan(stream[i : i+1]); err != nil || n != 1 {
			t.Fatalf("byte %d: Scan = %d, %v", i, n, err)
		}
	}
}

func TestCheckerRefuses(t *testing.T) {
	cases := []struct {
		name   string
		c      Checker
		frame  []byte
		code   uint16
		reason string
	}{
		{"64-bit length, top bit", Checker{FromClient: true}, append([]byte{0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, key...), 1002, "most significant bit"},
		{"reserved opcode", Checker{FromClient: true}, clientFrame(0x85, nil), 1002, "reserved opcode 5"},
		{"reserved control opcode", Checker{FromClient: true}, clientFrame(0x8f, nil), 1002, "reserved opcode 15"},
		{"RSV1 without deflate", Checker{FromClient: true}, clientFrame(0xc1, nil), 1002, "RSV1"},
		{"RSV1 on a control frame with deflate", Checker{FromClient: true, Deflate: true}, clientFrame(0xc9, nil), 1002, "RSV1 bit set on a control"},
		{"RSV2", Checker{FromClient: true, Deflate: true}, clientFrame(0xa1, nil), 1002, "RSV2/RSV3"},
		{"fragmented ping", Checker{FromClient: true}, clientFrame(0x09, nil), 1002, "fragmented control"},
		{"long ping", Checker{FromClient: true}, clientFrame(0x89, make([]byte, 126)), 1002, "longer than 125"},
		{"unmasked from a client", Checker{FromClient: true}, []byte{0x81, 0}, 1002, "unmasked"},
		{"masked from a server", Checker{}, clientFrame(0x81, nil), 1002, "masked frame from a server"},
		{"lone continuation", Checker{FromClient: true}, clientFrame(0x80, nil), 1002, "no message to continue"},
		{"interleaved message", Checker{FromClient: true}, clientFrame(0x82, nil), 1002, "before the fragmented message ended"},
		{"frame over the limit", Checker{FromClient: true, MaxMessage: 100}, clientFrame(0x81, make([]byte, 101)), 1009, "over the limit of 100"},
		{"fragments over the limit", Checker{FromClient: true, MaxMessage: 100}, clientFrame(0x80, make([]byte, 60)), 1009, "at least 120 bytes"},
		{"endless response header", Checker{Response: true}, bytes.Repeat([]byte("X-A: b\r\n"), MaxResponseHeader/8+2), 1002, "handshake response header"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// the frame after a valid one, in one read and byte by byte
			valid := clientFrame(0x81, []byte("{}"))
			switch tc.name {
			case "interleaved message":
				valid = clientFrame(0x02, []byte("a"))
			case "fragments over the limit":
				valid = clientFrame(0x01, make([]byte, 60))
			}
			if !tc.c.FromClient {
				valid = []byte{0x81, 2, '{', '}'}
			}
			if tc.c.Response {
				valid = []byte("HTTP/1.1 101 OK\r\n")
			}
			in := append(append([]byte(nil), valid...), tc.frame...)
			c := tc.c
			n, err := c.Scan(in)
			if err == nil || err.Code != tc.code || !strings.Contains(err.Reason, tc.reason) {
				t.Fatalf("Scan = %d, %v; want %d %q", n, err, tc.code, tc.reason)
			}
			if !tc.c.Response && n != len(valid) {
				t.Fatalf("Scan passed %d bytes, want the %d of the valid frame", n, len(valid))
			}
			if n2, err2 := c.Scan([]byte{0x81}); n2 != 0 || err2 != err {
				t.Fatalf("after a refusal Scan = %d, %v", n2, err2)
			}
			c = tc.c
			var got *Error
			for i := range in {
				if _, got = c.Scan(in[i : i+1]); got != nil {
					break
				}
			}
			if got == nil || got.Code != tc.code {
				t.Fatalf("byte by byte: %v", got)
			}
		})
	}
}

func TestCheckerResponse(t *testing.T) {
	c := Checker{Response: true}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	frames := []byte{0x81, 2, '{', '}', 0x89, 0}
	in := append([]byte(resp), frames...)
	for i := range in {
		if n, err := c.Scan(in[i : i+1]); err != nil || n != 1 {
			t.Fatalf("byte %d: %d %v", i, n, err)
		}
	}
	// a masked frame right after the response is refused
	c = Checker{Response: true}
	if _, err := c.Scan(append([]byte(resp), clientFrame(0x81, nil)...)); err == nil {
		t.Fatal("a masked server frame after the response passed")
	}
}

func TestTruncate(t *testing.T) {
	s := strings.Repeat("é", 100) // 2 bytes each
	for n := 0; n <= len(s)+1; n++ {
		got := Truncate(s, n)
		if len(got) > n || !utf8.ValidString(got) || len(got) < n-1 && len(got) != len(s) {
			t.Fatalf("Truncate(%d) = %d bytes, valid %v", n, len(got), utf8.ValidString(got))
		}
	}
	p := ClosePayload(1002, strings.Repeat("€", 60)) // 3 bytes each: 180 bytes
	if len(p) > MaxControlPayload || !utf8.Valid(p[2:]) {
		t.Fatalf("close payload of %d bytes, valid UTF-8 %v", len(p), utf8.Valid(p[2:]))
	}
}

func TestFrameLengthForms(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		buf := append(make([]byte, MaxHeader), make([]byte, n)...)
		f := Frame(buf, OpBinary)
		c := Checker{}
		if k, err := c.Scan(f); err != nil || k != len(f) || c.remaining != 0 || c.have != 0 {
			t.Fatalf("n=%d: frame of %d bytes scanned as %d, %v", n, len(f), k, err)
		}
	}
}

// FuzzChecker feeds arbitrary bytes, in arbitrary reads: Scan never panics,
// never passes more than it was given, and keeps refusing once it refused.
func FuzzChecker(f *testing.F) {
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, uint8(3), true)
	f.Add(clientFrame(0x81, []byte("{}")), uint8(1), true)
	f.Add([]byte("HTTP/1.1 101 OK\r\n\r\n\x81\x00"), uint8(7), false)
	f.Fuzz(func(t *testing.T, in []byte, step uint8, fromClient bool) {
		c := Checker{FromClient: fromClient, Response: !fromClient, MaxMessage: 1 << 20}
		st := int(step%16) + 1
		var refused *Error
		for i := 0; i < len(in); i += st {
			part := in[i:min(i+st, len(in))]
			n, err := c.Scan(part)
			if n < 0 || n > len(part) {
				t.Fatalf("Scan passed %d of %d bytes", n, len(part))
			}
			if refused != nil && (err != refused || n != 0) {
				t.Fatalf("after a refusal: %d, %v", n, err)
			}
			if err == nil && n != len(part) {
				t.Fatalf("no refusal, but %d of %d bytes passed", n, len(part))
			}
			refused = err
		}
	})
}
