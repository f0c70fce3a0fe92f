// Package wsframe builds and checks WebSocket frames (RFC 6455, section 5)
// where ferry handles them itself rather than through gws: the broker and
// the client build their frames here so that several go out in one write,
// and both check every frame header a peer sends (Checker) before gws
// parses it.
package wsframe

import (
	"encoding/binary"
	"unicode/utf8"
)

// Opcodes (RFC 6455, section 5.2).
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// MaxHeader is the largest header of an unmasked frame: what Frame expects
// to find reserved in front of the payload.
const MaxHeader = 10

// MaxControlPayload is the most a control frame may carry.
const MaxControlPayload = 125

// Frame turns buf, whose first MaxHeader bytes are reserved and whose rest
// is the payload, into one final unmasked frame of opcode (a frame from a
// server): the header is written just in front of the payload, and the
// frame is returned without copying the payload.
func Frame(buf []byte, opcode byte) []byte {
	n := len(buf) - MaxHeader
	var h int
	switch {
	case n < 126:
		h = 2
		buf[MaxHeader-1] = byte(n)
	case n <= 0xffff:
		h = 4
		buf[MaxHeader-3] = 126
		binary.BigEndian.PutUint16(buf[MaxHeader-2:], uint16(n))
	default:
		h = 10
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
	}
	buf[MaxHeader-h] = 0x80 | opcode
	return buf[MaxHeader-h:]
}

// Control returns an unmasked control frame (ping, pong or close) carrying
// payload, which must be at most MaxControlPayload bytes.
func Control(opcode byte, payload []byte) []byte {
	buf := make([]byte, MaxHeader, MaxHeader+len(payload))
	return Frame(append(buf, payload...), opcode)
}

// ClosePayload is the payload of a close frame: the code, then the reason,
// cut at a character boundary to fit in a control frame.
func ClosePayload(code uint16, reason string) []byte {
	reason = Truncate(reason, MaxControlPayload-2)
	return append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), code), reason...)
}

// Close returns an unmasked close frame with code and reason.
func Close(code uint16, reason string) []byte {
	return Control(OpClose, ClosePayload(code, reason))
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 character.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// AppendMasked appends one final (FIN) frame of opcode carrying payload,
// masked with key as every frame from a client must be.
func AppendMasked(dst []byte, opcode byte, key uint32, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	// the key's bytes on the wire are key[0..3]: here its little-endian bytes
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	dst = append(dst, payload...)
	p := dst[start:]
	k8 := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k8)
	}
	for ; i < len(p); i++ {
		p[i] ^= byte(key >> (8 * (i % 4)))
	}
	return dst
}
