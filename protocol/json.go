package protocol

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// DecodeJSON decodes a client frame from a JSON object. Data is a sub-slice
// of b: the caller must not reuse b while f.Data is in use.
func DecodeJSON(b []byte, f *Frame) *Error {
	if err := decodeJSON(b, f); err != nil {
		return err
	}
	return f.check()
}

// decodeJSON decodes a frame of either direction without checking its op.
func decodeJSON(b []byte, f *Frame) *Error {
	prevTopic := f.reset()
	d := jsonDecoder{b: b}
	d.ws()
	if d.i >= len(b) {
		return Errorf(CodeBadFrame, "empty frame: expected a JSON object")
	}
	if b[d.i] != '{' {
		return Errorf(CodeBadFrame, "frame is not a JSON object (starts with %s)", describeJSONStart(b[d.i]))
	}
	d.i++
	var fieldErr *Error
	first := true
	for {
		d.ws()
		if d.i >= len(b) {
			return d.syntax("unterminated object")
		}
		if b[d.i] == '}' && first {
			d.i++
			break
		}
		if !first {
			if b[d.i] == '}' {
				d.i++
				break
			}
			if b[d.i] != ',' {
				return d.syntax("expected ',' or '}'")
			}
			d.i++
			d.ws()
		}
		first = false
		if d.i >= len(b) || b[d.i] != '"' {
			return d.syntax("expected a string key")
		}
		kb, err := d.strBytes()
		if err != nil {
			return err
		}
		key := knownKey(kb)
		d.ws()
		if d.i >= len(b) || b[d.i] != ':' {
			return d.syntax("expected ':'")
		}
		d.i++
		d.ws()
		if d.i >= len(b) {
			return d.syntax("expected a value")
		}
		kind := fieldOf(key)
		c := b[d.i]
		if kind != 0 && kind != kindData && c == 'n' {
			// null stands for an absent optional field
			if err := d.skip(0); err != nil {
				return err
			}
			continue
		}
		switch {
		case kind == kindString && c == '"':
			s, err := d.strBytes()
			if err != nil {
				return err
			}
			f.setString(key, stringValue(key, s, prevTopic))
		case kind == kindUint && c >= '0' && c <= '9':
			v, ok, err := d.uint()
			if err != nil {
				return err
			}
			if ok {
				f.setUint(key, v)
			} else if fieldErr == nil {
				fieldErr = Errorf(CodeBadFrame, "field %q: expected an unsigned integer", key)
			}
		case kind == kindBool && (c == 't' || c == 'f'):
			start := d.i
			if err := d.skip(0); err != nil {
				return err
			}
			f.setBool(key, b[start] == 't')
		case kind == kindData:
			start := d.i
			if err := d.skip(0); err != nil {
				return err
			}
			f.Data = b[start:d.i]
		default:
			if err := d.skip(0); err != nil {
				return err
			}
			if kind != 0 && fieldErr == nil {
				fieldErr = Errorf(CodeBadFrame, "field %q: expected %s", key, kindName(kind))
			}
		}
	}
	d.ws()
	if d.i != len(b) {
		return d.syntax("unexpected data after the object")
	}
	if fieldErr != nil {
		return fieldErr
	}
	return nil
}

func describeJSONStart(c byte) string {
	switch {
	case c == '[':
		return "'[': an array"
	case c == '"':
		return "'\"': a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case c >= 0x20 && c < 0x7f:
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// ValidJSON reports whether b holds exactly one JSON value (with optional
// surrounding white space) nested at most MaxDepth deep.
func ValidJSON(b []byte) bool {
	d := jsonDecoder{b: b}
	d.ws()
	if d.skip(0) != nil {
		return false
	}
	d.ws()
	return d.i == len(b)
}

const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// stringStops returns, for the 8 bytes of x (little endian: the first byte
// is the lowest), a mask with the high bit set in bytes that are '"', '\\'
// or a control character (< 0x20), the bytes at which scanning a JSON string
// must stop. The lowest set bit marks the first such byte exactly; bits
// above it may be false positives (borrows), so only the first is used.
func stringStops(x uint64) uint64 {
	q := x ^ (swarOnes * '"')
	e := x ^ (swarOnes * '\\')
	return ((q-swarOnes)&^q | (e-swarOnes)&^e | (x-swarOnes*0x20)&^x) & swarHigh
}

type jsonDecoder struct {
	b []byte
	i int
}

func (d *jsonDecoder) syntax(what string) *Error {
	return Errorf(CodeBadFrame, "invalid JSON at offset %d: %s", d.i, what)
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// uint reads a number. ok is false for a valid number that is not an
// unsigned integer fitting in 64 bits.
func (d *jsonDecoder) uint() (v uint64, ok bool, err *Error) {
	start := d.i
	if err := d.number(); err != nil {
		return 0, false, err
	}
	v, perr := strconv.ParseUint(string(d.b[start:d.i]), 10, 64)
	return v, perr == nil, nil
}

// number skips a number following the JSON grammar.
func (d *jsonDecoder) number() *Error {
	b := d.b
	if d.i < len(b) && b[d.i] == '-' {
		d.i++
	}
	if d.i >= len(b) {
		return d.syntax("incomplete number")
	}
	switch {
	case b[d.i] == '0':
		d.i++
	case b[d.i] >= '1' && b[d.i] <= '9':
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
	default:
		return d.syntax("invalid number")
	}
	if d.i < len(b) && b[d.i] == '.' {
		d.i++
		n := d.i
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return d.syntax("invalid number: digit expected after '.'")
		}
	}
	if d.i < len(b) && (b[d.i] == 'e' || b[d.i] == 'E') {
		d.i++
		if d.i < len(b) && (b[d.i] == '+' || b[d.i] == '-') {
			d.i++
		}
		n := d.i
		for d.i < len(b) && b[d.i] >= '0' && b[d.i] <= '9' {
			d.i++
		}
		if d.i == n {
			return d.syntax("invalid number: digit expected in exponent")
		}
	}
	return nil
}

// strBytes reads a string at d.i (which holds '"') and returns it
// unescaped, as a sub-slice of the input when it has no escapes.
func (d *jsonDecoder) strBytes() ([]byte, *Error) {
	b := d.b
	d.i++
	start := d.i
	ascii := true
	for d.i < len(b) {
		if d.i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[d.i:])
			if x&swarHigh != 0 {
				ascii = false
			}
			m := stringStops(x)
			if m == 0 {
				d.i += 8
				continue
			}
			d.i += bits.TrailingZeros64(m) >> 3
		}
		c := b[d.i]
		if c == '"' && (ascii || utf8.Valid(b[start:d.i])) {
			s := b[start:d.i:d.i]
			d.i++
			return s, nil
		}
		if c == '\\' || c == '"' {
			// escapes, or invalid UTF-8 to replace as appendStr does
			d.i = start - 1
			return d.appendStr(nil)
		}
		if c < 0x20 {
			return nil, d.syntax("control character in string")
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
		d.i++
	}
	return nil, d.syntax("unterminated string")
}

// appendStr appends the unescaped string at d.i (which holds '"') to dst.
// Invalid UTF-8 is replaced with U+FFFD.
func (d *jsonDecoder) appendStr(dst []byte) ([]byte, *Error) {
	b := d.b
	d.i++
	for d.i < len(b) {
		c := b[d.i]
		switch {
		case c == '"':
			d.i++
			return dst, nil
		case c < 0x20:
			return dst, d.syntax("control character in string")
		case c == '\\':
			if d.i+1 >= len(b) {
				return dst, d.syntax("unterminated string")
			}
			e := b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok {
					return dst, d.syntax(`invalid \u escape`)
				}
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if d.i+1 < len(b) && b[d.i] == '\\' && b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if lo, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, lo); dec != utf8.RuneError {
								r2 = dec
							} else {
								d.i = save
							}
						} else {
							return dst, d.syntax(`invalid \u escape`)
						}
					}
					r = r2
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, d.syntax("invalid escape in string")
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			d.i++
		default:
			r, n := utf8.DecodeRune(b[d.i:])
			dst = utf8.AppendRune(dst, r)
			d.i += n
		}
	}
	return dst, d.syntax("unterminated string")
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// skip validates and skips one value.
func (d *jsonDecoder) skip(depth int) *Error {
	b := d.b
	if d.i >= len(b) {
		return d.syntax("expected a value")
	}
	switch c := b[d.i]; {
	case c == '"':
		d.i++
		for d.i < len(b) {
			if d.i+8 <= len(b) {
				m := stringStops(binary.LittleEndian.Uint64(b[d.i:]))
				if m == 0 {
					d.i += 8
					continue
				}
				d.i += bits.TrailingZeros64(m) >> 3
			}
			c := b[d.i]
			switch {
			case c == '"':
				d.i++
				return nil
			case c == '\\':
				if d.i+1 >= len(b) {
					return d.syntax("unterminated string")
				}
				switch b[d.i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					d.i += 2
				case 'u':
					d.i += 2
					if _, ok := d.hex4(); !ok {
						return d.syntax(`invalid \u escape`)
					}
				default:
					d.i++
					return d.syntax("invalid escape in string")
				}
			case c < 0x20:
				return d.syntax("control character in string")
			default:
				d.i++
			}
		}
		return d.syntax("unterminated string")
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return d.syntax(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		}
		closer := byte('}')
		if c == '[' {
			closer = ']'
		}
		d.i++
		d.ws()
		if d.i < len(b) && b[d.i] == closer {
			d.i++
			return nil
		}
		for {
			d.ws()
			if c == '{' {
				if d.i >= len(b) || b[d.i] != '"' {
					return d.syntax("expected a string key")
				}
				if err := d.skip(depth + 1); err != nil {
					return err
				}
				d.ws()
				if d.i >= len(b) || b[d.i] != ':' {
					return d.syntax("expected ':'")
				}
				d.i++
				d.ws()
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(b) {
				return d.syntax("unterminated object or array")
			}
			if b[d.i] == closer {
				d.i++
				return nil
			}
			if b[d.i] != ',' {
				return d.syntax(fmt.Sprintf("expected ',' or '%c'", closer))
			}
			d.i++
		}
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	}
	return d.syntax("unexpected character " + describeJSONStart(b[d.i]))
}

func (d *jsonDecoder) literal(lit string) *Error {
	if len(d.b)-d.i < len(lit) || string(d.b[d.i:d.i+len(lit)]) != lit {
		return d.syntax("invalid literal")
	}
	d.i += len(lit)
	return nil
}

// AppendJSON appends f as a JSON object. f.Data must hold one JSON value.
func AppendJSON(dst []byte, f *Frame) []byte {
	dst = append(dst, `{"op":`...)
	dst = AppendJSONString(dst, f.Op)
	if f.HasID {
		dst = append(dst, `,"id":`...)
		dst = strconv.AppendUint(dst, f.ID, 10)
	}
	if f.Topic != "" {
		dst = append(dst, `,"topic":`...)
		dst = AppendJSONString(dst, f.Topic)
	}
	if f.Group != "" {
		dst = append(dst, `,"group":`...)
		dst = AppendJSONString(dst, f.Group)
	}
	if f.Filter != "" {
		dst = append(dst, `,"filter":`...)
		dst = AppendJSONString(dst, f.Filter)
	}
	if f.Data != nil {
		dst = append(dst, `,"data":`...)
		dst = append(dst, f.Data...)
	}
	if f.Ack {
		dst = append(dst, `,"ack":true`...)
	}
	if f.HasInflight {
		dst = append(dst, `,"inflight":`...)
		dst = strconv.AppendUint(dst, f.Inflight, 10)
	}
	if f.Retain {
		dst = append(dst, `,"retain":true`...)
	}
	if f.HasMid {
		dst = append(dst, `,"mid":`...)
		dst = strconv.AppendUint(dst, f.Mid, 10)
	}
	if f.Redelivered {
		dst = append(dst, `,"redelivered":true`...)
	}
	if f.Retained {
		dst = append(dst, `,"retained":true`...)
	}
	if f.Code != "" {
		dst = append(dst, `,"code":`...)
		dst = AppendJSONString(dst, f.Code)
	}
	if f.Reason != "" {
		dst = append(dst, `,"reason":`...)
		dst = AppendJSONString(dst, f.Reason)
	}
	if f.Dropped != 0 {
		dst = append(dst, `,"dropped":`...)
		dst = strconv.AppendUint(dst, f.Dropped, 10)
	}
	if f.Session != "" {
		dst = append(dst, `,"session":`...)
		dst = AppendJSONString(dst, f.Session)
		if f.Resumed {
			dst = append(dst, `,"resumed":true`...)
		} else {
			dst = append(dst, `,"resumed":false`...)
		}
	}
	if f.Token != "" {
		dst = append(dst, `,"token":`...)
		dst = AppendJSONString(dst, f.Token)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	// appendJSONString only reads s
	return appendJSONString(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// appendJSONString is AppendJSONString for bytes, without copying them to a
// string.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
