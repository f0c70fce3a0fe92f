package wsframe

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Close codes the Checker uses (RFC 6455, section 7.4.1).
const (
	CloseProtocolError = 1002
	CloseTooLarge      = 1009
)

// Error is a frame a peer must not send: the close code to answer with and
// a reason a person can read.
type Error struct {
	Code   uint16
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("websocket: %d %s", e.Code, e.Reason) }

// MaxResponseHeader bounds the HTTP response a client reads before the
// frames, when the Checker reads it too (Checker.Response).
const MaxResponseHeader = 64 << 10

// Checker follows the frames of one direction of a connection, as their
// bytes go by, and refuses a header that RFC 6455 forbids or that announces
// more than the limit, before anything parses it: gws trusts headers that it
// should refuse (a 64-bit length with its top bit set panics it, a control
// frame is read before its length is checked, a fragmented message grows
// past its limit before the limit is checked). What it refuses:
//
//   - a 64-bit payload length with its most significant bit set;
//   - a reserved opcode (3-7, 11-15);
//   - RSV2 or RSV3 set, or RSV1 set unless permessage-deflate was negotiated
//     (and then only on the first frame of a data message);
//   - a control frame that is fragmented or carries more than 125 bytes;
//   - a frame from a client that is not masked, or from a server that is;
//   - a continuation frame with no message to continue, or a new data frame
//     before the fragmented message in progress is finished;
//   - a message (all its fragments) over MaxMessage bytes, with 1009.
//
// The zero value checks frames from a server with no size limit.
type Checker struct {
	// FromClient: the frames are a client's (they must be masked).
	FromClient bool
	// Deflate: permessage-deflate was negotiated (RSV1 marks a compressed
	// message).
	Deflate bool
	// MaxMessage bounds a message's payload, all fragments together; 0
	// means no bound.
	MaxMessage uint64
	// Response: the stream starts with an HTTP response (a client's side of
	// the handshake), which is passed over, up to MaxResponseHeader bytes.
	Response bool

	hdr       [14]byte
	have      int    // header bytes seen of the frame now starting
	need      int    // header bytes that frame has (once have >= 2)
	remaining uint64 // payload bytes of the current frame still to come
	inMessage bool   // a fragmented data message is in progress
	msgBytes  uint64 // payload bytes of the message so far
	preamble  int    // HTTP response bytes seen (Response)
	crlf      int    // how much of "\r\n\r\n" was matched last
	frames    bool   // past the HTTP response
	err       *Error
}

// Scan follows p, the next bytes of the stream. When every frame in it is
// allowed it returns len(p) and nil. Otherwise it returns the refusal and
// how many leading bytes of p come before the refused frame (they may be
// handed on: they hold whole frames or the start of the refused one, which
// can never be parsed to its end); every later call returns the same
// refusal.
func (c *Checker) Scan(p []byte) (int, *Error) {
	if c.err != nil {
		return 0, c.err
	}
	i := 0
	if c.Response && !c.frames {
		i = c.skipResponse(p)
		if c.err != nil {
			return 0, c.err
		}
	}
	start := 0 // where the frame now starting began in p
	for i < len(p) {
		if c.remaining > 0 {
			k := uint64(len(p) - i)
			if k > c.remaining {
				k = c.remaining
			}
			i += int(k)
			c.remaining -= k
			continue
		}
		if c.have == 0 {
			start = i
		}
		c.hdr[c.have] = p[i]
		c.have++
		i++
		if c.have == 2 {
			if err := c.checkStart(); err != nil {
				return c.fail(start, err)
			}
		}
		if c.have >= 2 && c.have == c.need {
			if err := c.checkLength(); err != nil {
				return c.fail(start, err)
			}
			c.have = 0
		}
	}
	return len(p), nil
}

func (c *Checker) fail(start int, err *Error) (int, *Error) {
	// start is where the refused header began in p, or 0 when it began
	// in an earlier call
	c.err = err
	return start, err
}

// Err returns the refusal, once there is one.
func (c *Checker) Err() *Error { return c.err }

func protoErr(format string, args ...any) *Error {
	return &Error{Code: CloseProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// checkStart checks the first two bytes of a header and works out its
// length.
func (c *Checker) checkStart() *Error {
	b0, b1 := c.hdr[0], c.hdr[1]
	fin, rsv, op := b0&0x80 != 0, b0&0x70, b0&0x0f
	masked, lc := b1&0x80 != 0, b1&0x7f
	control := op >= 0x8
	switch {
	case op > OpBinary && op < OpClose || op > OpPong:
		return protoErr("reserved opcode %d", op)
	case rsv&0x30 != 0:
		return protoErr("RSV2/RSV3 bits set: no extension defines them")
	case rsv&0x40 != 0 && !c.Deflate:
		return protoErr("RSV1 bit set without a negotiated extension")
	case rsv&0x40 != 0 && (control || op == OpContinuation):
		return protoErr("RSV1 bit set on a control or continuation frame")
	case control && !fin:
		return protoErr("fragmented control frame")
	case control && lc > MaxControlPayload:
		return protoErr("control frame longer than 125 bytes")
	case c.FromClient && !masked:
		return protoErr("unmasked frame from a client")
	case !c.FromClient && masked:
		return protoErr("masked frame from a server")
	case op == OpContinuation && !c.inMessage:
		return protoErr("continuation frame with no message to continue")
	case (op == OpText || op == OpBinary) && c.inMessage:
		return protoErr("new data frame before the fragmented message ended")
	}
	c.need = 2
	switch lc {
	case 126:
		c.need += 2
	case 127:
		c.need += 8
	}
	if masked {
		c.need += 4
	}
	return nil
}

// checkLength checks a whole header's payload length and follows the
// fragmentation of data messages.
func (c *Checker) checkLength() *Error {
	var n uint64
	switch lc := c.hdr[1] & 0x7f; lc {
	case 126:
		n = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
	case 127:
		n = binary.BigEndian.Uint64(c.hdr[2:10])
		if n > math.MaxInt64 {
			return protoErr("64-bit payload length with its most significant bit set")
		}
	default:
		n = uint64(lc)
	}
	c.remaining = n
	op, fin := c.hdr[0]&0x0f, c.hdr[0]&0x80 != 0
	if op >= OpClose {
		return nil
	}
	if op != OpContinuation {
		c.msgBytes = 0
	}
	c.msgBytes += n // both at most MaxInt64, and msgBytes at most MaxMessage before
	if c.MaxMessage > 0 && c.msgBytes > c.MaxMessage {
		return &Error{Code: CloseTooLarge, Reason: fmt.Sprintf("message of at least %d bytes, over the limit of %d", c.msgBytes, c.MaxMessage)}
	}
	if c.MaxMessage == 0 && c.msgBytes > math.MaxInt64 {
		c.msgBytes = math.MaxInt64
	}
	c.inMessage = !fin
	return nil
}

// skipResponse passes over the HTTP response at the start of the stream
// and returns where the frames begin in p (len(p) if not yet).
func (c *Checker) skipResponse(p []byte) int {
	const end = "\r\n\r\n"
	for i, b := range p {
		c.preamble++
		switch {
		case b == end[c.crlf]:
			c.crlf++
		case b == end[0]:
			c.crlf = 1
		default:
			c.crlf = 0
		}
		if c.crlf == len(end) {
			c.frames = true
			return i + 1
		}
		if c.preamble > MaxResponseHeader {
			c.err = protoErr("handshake response header longer than %d bytes", MaxResponseHeader)
			return len(p)
		}
	}
	return len(p)
}
