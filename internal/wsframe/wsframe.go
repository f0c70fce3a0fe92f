// Package wsframe encodes client-to-server WebSocket frames (RFC 6455,
// section 5), so that a client can write several messages with one write.
package wsframe

import "encoding/binary"

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
