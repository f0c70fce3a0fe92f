package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Convert appends the value data, encoded in codec from, to dst encoded in
// codec to. data must be one valid value of its codec (as the decoders
// guarantee); Convert reports an error otherwise (also when from == to, where
// data is copied as is), and then returns dst unchanged.
//
// msgpack to JSON: bin becomes a padded standard base64 string; map keys that
// are not strings become the JSON text of the key (1 → "1", true → "true");
// the timestamp extension (-1) becomes an RFC 3339 string (when its year is
// 0 to 9999, else it takes the generic form); any other extension becomes
// {"$ext": type, "data": "<base64>"}; NaN and ±Inf become the strings "NaN",
// "+Inf" and "-Inf"; invalid UTF-8 in a str becomes U+FFFD.
//
// JSON to msgpack: integers that fit in 64 bits become msgpack integers
// (but -0 the float64 negative zero), other numbers float64 (±Inf beyond its
// range); strings become str, objects maps with str keys.
func Convert(dst []byte, from, to Codec, data []byte) ([]byte, error) {
	var out []byte
	var err *Error
	if from == to {
		// a copy, of a value checked as the conversions check theirs
		if from == Msgpack {
			d := mpDecoder{b: data}
			err = d.skip(0)
			if err == nil && d.i != len(data) {
				err = d.syntax("unexpected data after the value")
			}
		} else {
			d := jsonDecoder{b: data}
			d.ws()
			err = d.skip(0)
			d.ws()
			if err == nil && d.i != len(data) {
				err = d.syntax("unexpected data after the value")
			}
		}
		if err != nil {
			return dst, err
		}
		return append(dst, data...), nil
	}
	if from == Msgpack {
		d := mpDecoder{b: data}
		out, err = d.toJSON(dst, 0)
		if err == nil && d.i != len(data) {
			err = d.syntax("unexpected data after the value")
		}
	} else {
		d := jsonDecoder{b: data}
		d.ws()
		out, err = d.toMsgpack(dst, 0)
		if err == nil {
			d.ws()
			if d.i != len(data) {
				err = d.syntax("unexpected data after the value")
			}
		}
	}
	if err != nil {
		// nothing of a partial conversion is left in dst
		return out[:len(dst)], err
	}
	return out, nil
}

func (d *mpDecoder) toJSON(dst []byte, depth int) ([]byte, *Error) {
	if d.i >= len(d.b) {
		return dst, d.syntax("truncated value")
	}
	c := d.b[d.i]
	if depth >= MaxDepth && (c >= 0x80 && c <= 0x9f || c >= mpArray16 && c <= mpMap32) {
		// as in skip: at most MaxDepth nested arrays and maps
		return dst, d.syntax(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
	}
	switch {
	case c <= 0x7f:
		d.i++
		return strconv.AppendUint(dst, uint64(c), 10), nil
	case c >= 0xe0:
		d.i++
		return strconv.AppendInt(dst, int64(int8(c)), 10), nil
	case c == mpNil:
		d.i++
		return append(dst, "null"...), nil
	case c == mpTrue:
		d.i++
		return append(dst, "true"...), nil
	case c == mpFalse:
		d.i++
		return append(dst, "false"...), nil
	case c >= mpUint8 && c <= mpUint64:
		size := 1 << (c - mpUint8)
		if !d.need(1 + size) {
			return dst, d.syntax("truncated integer")
		}
		d.i++
		return strconv.AppendUint(dst, d.be(size), 10), nil
	case c >= mpInt8 && c <= mpInt64:
		size := 1 << (c - mpInt8)
		if !d.need(1 + size) {
			return dst, d.syntax("truncated integer")
		}
		d.i++
		v := d.be(size)
		shift := 64 - 8*uint(size)
		return strconv.AppendInt(dst, int64(v<<shift)>>shift, 10), nil
	case c == mpFloat32:
		if !d.need(5) {
			return dst, d.syntax("truncated float")
		}
		d.i++
		return appendJSONFloat(dst, float64(math.Float32frombits(uint32(d.be(4)))), 32), nil
	case c == mpFloat64:
		if !d.need(9) {
			return dst, d.syntax("truncated float")
		}
		d.i++
		return appendJSONFloat(dst, math.Float64frombits(d.be(8)), 64), nil
	}
	if n, ok, err := d.strLen(); ok {
		if err != nil {
			return dst, err
		}
		dst = appendJSONString(dst, d.b[d.i:d.i+n])
		d.i += n
		return dst, nil
	}
	if c >= mpBin8 && c <= mpBin32 {
		size := 1 << (c - mpBin8)
		if !d.need(1 + size) {
			return dst, d.syntax("truncated binary header")
		}
		d.i++
		n := d.length(size)
		if !d.need(n) {
			return dst, d.syntax("truncated binary")
		}
		dst = appendBase64String(dst, d.b[d.i:d.i+n])
		d.i += n
		return dst, nil
	}
	if (c >= mpExt8 && c <= mpExt32) || (c >= mpFixExt1 && c <= mpFixExt16) {
		return d.extToJSON(dst)
	}
	if (c >= 0x90 && c <= 0x9f) || c == mpArray16 || c == mpArray32 {
		var n int
		switch {
		case c != mpArray16 && c != mpArray32:
			n = int(c & 0x0f)
			d.i++
		case c == mpArray16 && d.need(3):
			d.i++
			n = d.length(2)
		case c == mpArray32 && d.need(5):
			d.i++
			n = d.length(4)
		default:
			return dst, d.syntax("truncated array header")
		}
		if !d.need(n) {
			return dst, d.syntax("truncated array")
		}
		dst = append(dst, '[')
		for k := 0; k < n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			var err *Error
			if dst, err = d.toJSON(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	if n, ok := d.mapLen(); ok {
		if !d.need(2 * n) {
			return dst, d.syntax("truncated map")
		}
		dst = append(dst, '{')
		for k := 0; k < n; k++ {
			if k > 0 {
				dst = append(dst, ',')
			}
			if d.i >= len(d.b) {
				return dst, d.syntax("truncated map")
			}
			var err *Error
			if sn, isStr, serr := d.strLen(); isStr {
				if serr != nil {
					return dst, serr
				}
				dst = appendJSONString(dst, d.b[d.i:d.i+sn])
				d.i += sn
			} else {
				// a non-string key: its JSON text, as a string
				var key []byte
				if key, err = d.toJSON(nil, depth+1); err != nil {
					return dst, err
				}
				if len(key) > 0 && key[0] == '"' {
					dst = append(dst, key...)
				} else {
					dst = AppendJSONString(dst, string(key))
				}
			}
			dst = append(dst, ':')
			if dst, err = d.toJSON(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	return dst, d.syntax("invalid byte")
}

func (d *mpDecoder) extToJSON(dst []byte) ([]byte, *Error) {
	c := d.b[d.i]
	var n int
	if c >= mpFixExt1 {
		n = 1 << (c - mpFixExt1)
		d.i++
	} else {
		size := 1 << (c - mpExt8)
		if !d.need(1 + size) {
			return dst, d.syntax("truncated extension header")
		}
		d.i++
		n = d.length(size)
	}
	if n < 0 || !d.need(1+n) {
		return dst, d.syntax("truncated extension")
	}
	typ := int8(d.b[d.i])
	body := d.b[d.i+1 : d.i+1+n]
	d.i += 1 + n
	if typ == -1 {
		// RFC 3339 has four-digit years: others keep the generic form
		if t, ok := decodeTimestamp(body); ok && t.UTC().Year() >= 0 && t.UTC().Year() <= 9999 {
			dst = append(dst, '"')
			dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
			return append(dst, '"'), nil
		}
	}
	dst = append(dst, `{"$ext":`...)
	dst = strconv.AppendInt(dst, int64(typ), 10)
	dst = append(dst, `,"data":`...)
	dst = appendBase64String(dst, body)
	return append(dst, '}'), nil
}

// decodeTimestamp decodes the body of the msgpack timestamp extension.
func decodeTimestamp(b []byte) (time.Time, bool) {
	switch len(b) {
	case 4:
		return time.Unix(int64(binary.BigEndian.Uint32(b)), 0), true
	case 8:
		v := binary.BigEndian.Uint64(b)
		nsec := int64(v >> 34)
		if nsec > 999999999 {
			return time.Time{}, false
		}
		return time.Unix(int64(v&(1<<34-1)), nsec), true
	case 12:
		nsec := int64(binary.BigEndian.Uint32(b))
		if nsec > 999999999 {
			return time.Time{}, false
		}
		return time.Unix(int64(binary.BigEndian.Uint64(b[4:])), nsec), true
	}
	return time.Time{}, false
}

func appendBase64String(dst, b []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

func appendJSONFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Inf"`...)
	}
	// the shortest form that reads back as the same float
	abs := math.Abs(f)
	fmtc := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmtc = 'e'
	}
	return strconv.AppendFloat(dst, f, fmtc, -1, bits)
}

func (d *jsonDecoder) toMsgpack(dst []byte, depth int) ([]byte, *Error) {
	b := d.b
	if d.i >= len(b) {
		return dst, d.syntax("expected a value")
	}
	switch c := b[d.i]; {
	case c == '"':
		start := len(dst)
		// reserve the longest header, then move the body if shorter
		dst = append(dst, 0, 0, 0, 0, 0)
		var err *Error
		if dst, err = d.appendStr(dst); err != nil {
			return dst, err
		}
		n := len(dst) - start - 5
		hdr := appendMsgpackLen(make([]byte, 0, 5), n, 0xa0, 31, mpStr8, mpStr16, mpStr32)
		copy(dst[start+len(hdr):], dst[start+5:])
		copy(dst[start:], hdr)
		return dst[:start+len(hdr)+n], nil
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return dst, d.syntax(fmt.Sprintf("nested deeper than %d levels", MaxDepth))
		}
		isMap := c == '{'
		start := len(dst)
		dst = append(dst, 0, 0, 0, 0, 0)
		n := 0
		d.i++
		d.ws()
		closer := byte(']')
		if isMap {
			closer = '}'
		}
		if d.i < len(b) && b[d.i] == closer {
			d.i++
		} else {
			for {
				d.ws()
				var err *Error
				if isMap {
					if d.i >= len(b) || b[d.i] != '"' {
						return dst, d.syntax("expected a string key")
					}
					if dst, err = d.toMsgpack(dst, depth+1); err != nil {
						return dst, err
					}
					d.ws()
					if d.i >= len(b) || b[d.i] != ':' {
						return dst, d.syntax("expected ':'")
					}
					d.i++
					d.ws()
				}
				if dst, err = d.toMsgpack(dst, depth+1); err != nil {
					return dst, err
				}
				n++
				d.ws()
				if d.i >= len(b) {
					return dst, d.syntax("unterminated object or array")
				}
				if b[d.i] == closer {
					d.i++
					break
				}
				if b[d.i] != ',' {
					return dst, d.syntax("expected ',' or closing bracket")
				}
				d.i++
			}
		}
		var hdr []byte
		if isMap {
			hdr = appendMsgpackLen(make([]byte, 0, 5), n, 0x80, 15, 0, mpMap16, mpMap32)
		} else {
			hdr = appendMsgpackLen(make([]byte, 0, 5), n, 0x90, 15, 0, mpArray16, mpArray32)
		}
		body := len(dst) - start - 5
		copy(dst[start+len(hdr):], dst[start+5:])
		copy(dst[start:], hdr)
		return dst[:start+len(hdr)+body], nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		if err := d.number(); err != nil {
			return dst, err
		}
		s := string(b[start:d.i])
		// only integer syntax is tried as an integer: a failed parse
		// allocates its error
		if !strings.ContainsAny(s, ".eE") && s != "-0" { // -0 stays the float64 negative zero
			if v, err := strconv.ParseInt(s, 10, 64); err == nil {
				return AppendMsgpackInt(dst, v), nil
			}
			if v, err := strconv.ParseUint(s, 10, 64); err == nil {
				return AppendMsgpackUint(dst, v), nil
			}
		}
		f, _ := strconv.ParseFloat(s, 64) // ±Inf on overflow, as JSON parsers do
		return binary.BigEndian.AppendUint64(append(dst, mpFloat64), math.Float64bits(f)), nil
	case c == 't':
		return append(dst, mpTrue), d.literal("true")
	case c == 'f':
		return append(dst, mpFalse), d.literal("false")
	case c == 'n':
		return append(dst, mpNil), d.literal("null")
	}
	return dst, d.syntax("unexpected character " + describeJSONStart(b[d.i]))
}
