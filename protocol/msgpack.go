package protocol

import (
	"encoding/binary"
	"fmt"
	"math"
)

// msgpack format codes used here.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt2  = 0xd5
	mpFixExt4  = 0xd6
	mpFixExt8  = 0xd7
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// DecodeMsgpack decodes a client frame from a msgpack map with string keys.
// Data is a sub-slice of b: the caller must not reuse b while f.Data is in
// use.
func DecodeMsgpack(b []byte, f *Frame) *Error {
	if err := decodeMsgpack(b, f); err != nil {
		return err
	}
	return f.check()
}

// decodeMsgpack decodes a frame of either direction without checking its op.
func decodeMsgpack(b []byte, f *Frame) *Error {
	prevTopic := f.reset()
	d := mpDecoder{b: b}
	if len(b) == 0 {
		return Errorf(CodeBadFrame, "empty frame: expected a msgpack map")
	}
	n, ok := d.mapLen()
	if !ok {
		if b[0] == mpMap16 || b[0] == mpMap32 {
			return d.syntax("truncated map header")
		}
		return Errorf(CodeBadFrame, "frame is not a msgpack map (starts with %s)", describeMsgpack(b[0]))
	}
	if !d.need(n) || !d.need(2*n) { // each entry takes at least two bytes
		return d.syntax("truncated map")
	}
	var fieldErr *Error
	for k := 0; k < n; k++ {
		if d.i >= len(b) {
			return d.syntax("truncated map")
		}
		kb, ok, err := d.strBytes()
		if err != nil {
			return err
		}
		key := knownKey(kb)
		if !ok {
			return Errorf(CodeBadFrame, "invalid msgpack at offset %d: map key is %s, expected a string", d.i, describeMsgpack(b[d.i]))
		}
		if d.i >= len(b) {
			return d.syntax("truncated map: missing value")
		}
		kind := fieldOf(key)
		c := b[d.i]
		if kind != 0 && kind != kindData && c == mpNil {
			d.i++
			continue
		}
		start := d.i
		switch kind {
		case kindString:
			s, ok, err := d.strBytes()
			if err != nil {
				return err
			}
			if ok {
				f.setString(key, stringValue(key, s, prevTopic))
				continue
			}
		case kindUint:
			v, ok, err := d.uint()
			if err != nil {
				return err
			}
			if ok {
				f.setUint(key, v)
				continue
			}
		case kindBool:
			if c == mpTrue || c == mpFalse {
				f.setBool(key, c == mpTrue)
				d.i++
				continue
			}
		}
		d.i = start
		if err := d.skip(0); err != nil {
			return err
		}
		if kind == kindData {
			f.Data = b[start:d.i]
		} else if kind != 0 && fieldErr == nil {
			got := describeMsgpack(c)
			if kind == kindUint && got == "an integer" {
				got = "a negative integer" // uint refuses no other integer
			}
			fieldErr = Errorf(CodeBadFrame, "field %q: expected %s, got %s", key, kindName(kind), got)
		}
	}
	if d.i != len(b) {
		return d.syntax("unexpected data after the map")
	}
	if fieldErr != nil {
		return fieldErr
	}
	return nil
}

// ValidMsgpack reports whether b holds exactly one msgpack value nested at
// most MaxDepth deep.
func ValidMsgpack(b []byte) bool {
	d := mpDecoder{b: b}
	return d.skip(0) == nil && d.i == len(b)
}

func describeMsgpack(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= mpUint8 && c <= mpInt64):
		return "an integer"
	case c <= 0x8f || c == mpMap16 || c == mpMap32:
		return "a map"
	case c <= 0x9f || c == mpArray16 || c == mpArray32:
		return "an array"
	case c <= 0xbf || c == mpStr8 || c == mpStr16 || c == mpStr32:
		return "a string"
	case c == mpNil:
		return "nil"
	case c == mpTrue || c == mpFalse:
		return "a boolean"
	case c >= mpBin8 && c <= mpBin32:
		return "binary data"
	case c == mpFloat32 || c == mpFloat64:
		return "a float"
	case (c >= mpExt8 && c <= mpExt32) || (c >= mpFixExt1 && c <= mpFixExt16):
		return "an extension value"
	}
	return fmt.Sprintf("invalid byte 0x%02x", c)
}

type mpDecoder struct {
	b []byte
	i int
}

func (d *mpDecoder) syntax(what string) *Error {
	return Errorf(CodeBadFrame, "invalid msgpack at offset %d: %s", d.i, what)
}

// need reports whether n more bytes are available after d.i.
func (d *mpDecoder) need(n int) bool { return n >= 0 && len(d.b)-d.i >= n }

func (d *mpDecoder) be(n int) uint64 {
	var v uint64
	for _, c := range d.b[d.i : d.i+n] {
		v = v<<8 | uint64(c)
	}
	d.i += n
	return v
}

// length reads a length field of size bytes. A length that does not fit in
// an int (on 32-bit platforms) becomes -1, which need refuses: no input can
// hold that many bytes or items.
func (d *mpDecoder) length(size int) int {
	v := d.be(size)
	if n := int(v); n >= 0 && uint64(n) == v {
		return n
	}
	return -1
}

// mapLen reads a map header.
func (d *mpDecoder) mapLen() (int, bool) {
	c := d.b[d.i]
	switch {
	case c >= 0x80 && c <= 0x8f:
		d.i++
		return int(c & 0x0f), true
	case c == mpMap16 && d.need(3):
		d.i++
		return d.length(2), true
	case c == mpMap32 && d.need(5):
		d.i++
		return d.length(4), true
	}
	return 0, false
}

// strLen reads a str header; ok is false when the value is not a string.
func (d *mpDecoder) strLen() (n int, ok bool, err *Error) {
	c := d.b[d.i]
	var hdr, size int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		d.i++
		n = int(c & 0x1f)
	case c == mpStr8:
		hdr, size = 1, 1
	case c == mpStr16:
		hdr, size = 1, 2
	case c == mpStr32:
		hdr, size = 1, 4
	default:
		return 0, false, nil
	}
	if size > 0 {
		if !d.need(hdr + size) {
			return 0, true, d.syntax("truncated string header")
		}
		d.i += hdr
		n = d.length(size)
	}
	if !d.need(n) {
		return 0, true, d.syntax("truncated string")
	}
	return n, true, nil
}

// strBytes reads a str; ok is false when the value is not a string.
func (d *mpDecoder) strBytes() ([]byte, bool, *Error) {
	n, ok, err := d.strLen()
	if !ok || err != nil {
		return nil, ok, err
	}
	s := d.b[d.i : d.i+n : d.i+n]
	d.i += n
	return s, true, nil
}

// uint reads a non-negative integer of any msgpack integer type.
func (d *mpDecoder) uint() (uint64, bool, *Error) {
	c := d.b[d.i]
	if c <= 0x7f {
		d.i++
		return uint64(c), true, nil
	}
	var size int
	signed := false
	switch c {
	case mpUint8, mpInt8:
		size = 1
	case mpUint16, mpInt16:
		size = 2
	case mpUint32, mpInt32:
		size = 4
	case mpUint64, mpInt64:
		size = 8
	default:
		return 0, false, nil
	}
	signed = c >= mpInt8
	if !d.need(1 + size) {
		return 0, true, d.syntax("truncated integer")
	}
	d.i++
	v := d.be(size)
	if signed && v>>(uint(size)*8-1) != 0 {
		return 0, false, nil // negative
	}
	return v, true, nil
}

// skip validates and skips one value.
func (d *mpDecoder) skip(depth int) *Error {
	if d.i >= len(d.b) {
		return d.syntax("truncated value")
	}
	c := d.b[d.i]
	var hdr, size, fixed, items int // size: bytes of a length field
	switch {
	case c <= 0x7f || c >= 0xe0 || c == mpNil || c == mpTrue || c == mpFalse:
		d.i++
		return nil
	case c <= 0x8f:
		hdr, items = 1, 2*int(c&0x0f)
	case c <= 0x9f:
		hdr, items = 1, int(c&0x0f)
	case c <= 0xbf:
		hdr, fixed = 1, int(c&0x1f)
	case c == mpBin8 || c == mpStr8:
		hdr, size = 1, 1
	case c == mpBin16 || c == mpStr16:
		hdr, size = 1, 2
	case c == mpBin32 || c == mpStr32:
		hdr, size = 1, 4
	case c == mpExt8:
		hdr, size, fixed = 1, 1, 1
	case c == mpExt16:
		hdr, size, fixed = 1, 2, 1
	case c == mpExt32:
		hdr, size, fixed = 1, 4, 1
	case c == mpFloat32 || c == mpUint32 || c == mpInt32:
		hdr, fixed = 1, 4
	case c == mpFloat64 || c == mpUint64 || c == mpInt64:
		hdr, fixed = 1, 8
	case c == mpUint8 || c == mpInt8:
		hdr, fixed = 1, 1
	case c == mpUint16 || c == mpInt16:
		hdr, fixed = 1, 2
	case c >= mpFixExt1 && c <= mpFixExt16:
		hdr, fixed = 1, 1+(1<<(c-mpFixExt1))
	case c == mpArray16 || c == mpMap16 || c == mpArray32 || c == mpMap32:
		hdr, size = 1, 2
		if c == mpArray32 || c == mpMap32 {
			size = 4
		}
	default:
		return d.syntax(fmt.Sprintf("invalid byte 0x%02x", c))
	}
	if !d.need(hdr + size) {
		return d.syntax("truncated value")
	}
	d.i += hdr
	if size > 0 {
		n := d.length(size)
		if !d.need(n) { // n bytes, or n items of at least one byte
			return d.syntax("truncated value")
		}
		switch c {
		case mpArray16, mpArray32:
			items = n
		case mpMap16, mpMap32:
			items = 2 * n
		default:
			fixed += n
		}
	}
	if fixed > 0 {
		if !d.need(fixed) {
			return d.syntax("truncated value")
		}
		d.i += fixed
		return nil
	}
	if c <= 0x9f || (c >= mpArray16 && c <= mpMap32) {
		// an array or a map counts as a level even when it is empty
		if depth >= MaxDepth {
			return d.syntax(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		}
	}
	if items > 0 {
		// each item takes at least one byte
		if !d.need(items) {
			return d.syntax("truncated array or map")
		}
		for ; items > 0; items-- {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

// AppendMsgpack appends f as a msgpack map. f.Data must hold one msgpack
// value.
func AppendMsgpack(dst []byte, f *Frame) []byte {
	n := 1
	for _, set := range [...]bool{f.HasID, f.Topic != "", f.Group != "", f.Filter != "", f.Data != nil, f.Ack,
		f.HasInflight, f.Retain, f.HasMid, f.Redelivered, f.Retained, f.Code != "", f.Reason != "", f.Dropped != 0,
		f.Session != "", f.Session != "", f.Token != ""} {
		if set {
			n++
		}
	}
	dst = appendMsgpackLen(dst, n, 0x80, 15, 0, mpMap16, mpMap32)
	dst = appendMsgpackKV(dst, "op", f.Op)
	if f.HasID {
		dst = AppendMsgpackString(dst, "id")
		dst = AppendMsgpackUint(dst, f.ID)
	}
	if f.Topic != "" {
		dst = appendMsgpackKV(dst, "topic", f.Topic)
	}
	if f.Group != "" {
		dst = appendMsgpackKV(dst, "group", f.Group)
	}
	if f.Filter != "" {
		dst = appendMsgpackKV(dst, "filter", f.Filter)
	}
	if f.Data != nil {
		dst = AppendMsgpackString(dst, "data")
		dst = append(dst, f.Data...)
	}
	if f.Ack {
		dst = append(AppendMsgpackString(dst, "ack"), mpTrue)
	}
	if f.HasInflight {
		dst = AppendMsgpackString(dst, "inflight")
		dst = AppendMsgpackUint(dst, f.Inflight)
	}
	if f.Retain {
		dst = append(AppendMsgpackString(dst, "retain"), mpTrue)
	}
	if f.HasMid {
		dst = AppendMsgpackString(dst, "mid")
		dst = AppendMsgpackUint(dst, f.Mid)
	}
	if f.Redelivered {
		dst = append(AppendMsgpackString(dst, "redelivered"), mpTrue)
	}
	if f.Retained {
		dst = append(AppendMsgpackString(dst, "retained"), mpTrue)
	}
	if f.Code != "" {
		dst = appendMsgpackKV(dst, "code", f.Code)
	}
	if f.Reason != "" {
		dst = appendMsgpackKV(dst, "reason", f.Reason)
	}
	if f.Dropped != 0 {
		dst = AppendMsgpackString(dst, "dropped")
		dst = AppendMsgpackUint(dst, f.Dropped)
	}
	if f.Session != "" {
		dst = appendMsgpackKV(dst, "session", f.Session)
		dst = AppendMsgpackString(dst, "resumed")
		if f.Resumed {
			dst = append(dst, mpTrue)
		} else {
			dst = append(dst, mpFalse)
		}
	}
	if f.Token != "" {
		dst = appendMsgpackKV(dst, "token", f.Token)
	}
	return dst
}

func appendMsgpackKV(dst []byte, k, v string) []byte {
	return AppendMsgpackString(AppendMsgpackString(dst, k), v)
}

// AppendMsgpackString appends s as a msgpack str.
func AppendMsgpackString(dst []byte, s string) []byte {
	dst = appendMsgpackLen(dst, len(s), 0xa0, 31, mpStr8, mpStr16, mpStr32)
	return append(dst, s...)
}

func appendMsgpackLen(dst []byte, n int, fix byte, fixMax int, c8, c16, c32 byte) []byte {
	switch {
	case n <= fixMax:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint8 && c8 != 0:
		return append(dst, c8, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, c32), uint32(n))
}

// AppendMsgpackUint appends v in the smallest msgpack unsigned form.
func AppendMsgpackUint(dst []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, mpUint16), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, mpUint32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, mpUint64), v)
}

// AppendMsgpackInt appends v in the smallest msgpack form.
func AppendMsgpackInt(dst []byte, v int64) []byte {
	if v >= 0 {
		return AppendMsgpackUint(dst, uint64(v))
	}
	switch {
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, mpInt8, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, mpInt16), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, mpInt32), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, mpInt64), uint64(v))
}
