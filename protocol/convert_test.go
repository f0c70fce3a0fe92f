package protocol_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// ---- comparison helpers -----------------------------------------------------

// decodeJSONValue decodes b with encoding/json, keeping numbers as text.
func decodeJSONValue(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", b, err)
	}
	if _, err := dec.Token(); err == nil {
		t.Fatalf("trailing data in %q", b)
	}
	return v
}

// decodeMsgpackValue decodes b with the msgpack library.
func decodeMsgpackValue(t testing.TB, b []byte) any {
	t.Helper()
	dec := msgpack.NewDecoder(bytes.NewReader(b))
	v, err := dec.DecodeInterface()
	if err != nil {
		t.Fatalf("msgpack library rejects %x: %v", b, err)
	}
	if _, err := dec.DecodeInterface(); err == nil {
		t.Fatalf("trailing data in %x", b)
	}
	return v
}

// bigOf parses a JSON number exactly enough to compare decimal values.
func bigOf(n json.Number) *big.Float {
	f, _, err := big.ParseFloat(string(n), 10, 2000, big.ToNearestEven)
	if err != nil {
		panic(fmt.Sprintf("bad number %q: %v", n, err))
	}
	return f
}

// sameJSON reports where two values decoded by decodeJSONValue differ
// ("" if they are the same). Numbers compare by decimal value.
func sameJSON(path string, a, b any) string {
	switch a := a.(type) {
	case json.Number:
		bn, ok := b.(json.Number)
		if ok && a == bn {
			return ""
		}
		if !ok || bigOf(a).Cmp(bigOf(bn)) != 0 {
			return fmt.Sprintf("%s: %v (%T) != %v (%T)", path, a, a, b, b)
		}
		return ""
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return fmt.Sprintf("%s: %v != %v", path, a, b)
		}
		for i := range a {
			if d := sameJSON(fmt.Sprintf("%s[%d]", path, i), a[i], bs[i]); d != "" {
				return d
			}
		}
		return ""
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return fmt.Sprintf("%s: %v != %v", path, a, b)
		}
		for k, v := range a {
			w, ok := bm[k]
			if !ok {
				return fmt.Sprintf("%s: key %q missing", path, k)
			}
			if d := sameJSON(path+"."+k, v, w); d != "" {
				return d
			}
		}
		return ""
	}
	if a != b {
		return fmt.Sprintf("%s: %#v != %#v", path, a, b)
	}
	return ""
}

// sameAsMsgpack reports where a JSON value (decodeJSONValue) and the msgpack
// library's decoding of its conversion differ: integers must be msgpack
// integers of the same value, other numbers float64.
func sameAsMsgpack(path string, j, m any) string {
	switch j := j.(type) {
	case json.Number:
		s := string(j)
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && s != "-0" {
			if got, ok := mpInt(m); !ok || got.Cmp(big.NewInt(v)) != 0 {
				return fmt.Sprintf("%s: %s became %#v, want the integer", path, s, m)
			}
			return ""
		}
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			if got, ok := mpInt(m); !ok || got.Cmp(new(big.Int).SetUint64(v)) != 0 {
				return fmt.Sprintf("%s: %s became %#v, want the integer", path, s, m)
			}
			return ""
		}
		want, _ := strconv.ParseFloat(s, 64)
		if got, ok := m.(float64); !ok || got != want || math.Signbit(got) != math.Signbit(want) {
			return fmt.Sprintf("%s: %s became %#v, want float64 %v", path, s, m, want)
		}
		return ""
	case []any:
		ms, ok := m.([]any)
		if !ok || len(j) != len(ms) {
			return fmt.Sprintf("%s: %v became %#v", path, j, m)
		}
		for i := range j {
			if d := sameAsMsgpack(fmt.Sprintf("%s[%d]", path, i), j[i], ms[i]); d != "" {
				return d
			}
		}
		return ""
	case map[string]any:
		mm, ok := m.(map[string]any)
		if !ok || len(j) != len(mm) {
			return fmt.Sprintf("%s: %v became %#v", path, j, m)
		}
		for k, v := range j {
			w, ok := mm[k]
			if !ok {
				return fmt.Sprintf("%s: key %q missing", path, k)
			}
			if d := sameAsMsgpack(path+"."+k, v, w); d != "" {
				return d
			}
		}
		return ""
	}
	if j != m {
		return fmt.Sprintf("%s: %#v became %#v", path, j, m)
	}
	return ""
}

func mpInt(v any) (*big.Int, bool) {
	switch v := v.(type) {
	case int8:
		return big.NewInt(int64(v)), true
	case int16:
		return big.NewInt(int64(v)), true
	case int32:
		return big.NewInt(int64(v)), true
	case int64:
		return big.NewInt(v), true
	case uint8:
		return big.NewInt(int64(v)), true
	case uint16:
		return big.NewInt(int64(v)), true
	case uint32:
		return big.NewInt(int64(v)), true
	case uint64:
		return new(big.Int).SetUint64(v), true
	}
	return nil, false
}

func mustConvert(t testing.TB, from, to protocol.Codec, in []byte) []byte {
	t.Helper()
	out, err := protocol.Convert(nil, from, to, in)
	if err != nil {
		t.Fatalf("Convert %s→%s of %q: %v", from, to, in, err)
	}
	return out
}

// ---- JSON → msgpack ---------------------------------------------------------

var jsonValues = []string{
	// numbers
	`0`, `-0`, `1`, `-1`, `7`, `127`, `128`, `255`, `256`, `-32`, `-33`, `-128`, `-129`,
	`65535`, `65536`, `-32768`, `-32769`, `4294967295`, `4294967296`, `-2147483648`, `-2147483649`,
	`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`, `18446744073709551615`,
	`18446744073709551616`, `-9223372036854775809`, `123456789012345678901234567890`,
	`1.5`, `-0.25`, `0.1`, `1.0`, `-1.0`, `-0.0`, `1e3`, `1E3`, `1e+3`, `1e-3`, `2.5E-3`, `-1e2`,
	`1e308`, `1.7976931348623157e308`, `5e-324`, `1e-400`, `1e21`, `1e-7`, `3.141592653589793`,
	`100000000000000000000000`, `0.000001`, `12345678.9`,
	// literals
	`true`, `false`, `null`,
	// strings
	`""`, `"a"`, `"héllo wörld"`, `"😀 日本"`, `"\u00e9\u20ac\ud83d\ude00"`, `"\"\\\/\b\f\n\r\t"`,
	`"\u0000"`, `"\ud800"`, `"\udc00x"`, `"\ud83d\ud83d\ude00"`,
	// containers
	`[]`, `{}`, `[1]`, `[1,"a",null,true,false,1.5,[],{}]`, `{"a":1}`, `{"":""}`,
	`{"a":{"b":{"c":[1,[2,[3]]]}}}`, `[[[[[[[[]]]]]]]]`,
	`{"topic":"x","data":{"k":[1,2,{"n":null}]},"\u00e9":"\n"}`,
	` [ 1 , { "a" : [ ] } ] `, "\t\r\n{\n\"a\"\t:\r1}\n",
	`{"dup":1,"dup":2}`,
}

func TestConvertJSONToMsgpack(t *testing.T) {
	for _, in := range jsonValues {
		out := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(in))
		if !protocol.ValidMsgpack(out) {
			t.Errorf("%s: invalid msgpack %x", in, out)
			continue
		}
		j := decodeJSONValue(t, []byte(in))
		m := decodeMsgpackValue(t, out)
		if d := sameAsMsgpack(in, j, m); d != "" {
			t.Errorf("Convert(%s) = %x: %s", in, out, d)
		}
	}
}

// Numbers take the smallest msgpack form, as the msgpack library writes
// them; other numbers are float64.
func TestConvertJSONNumberEncoding(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // hex
	}{
		{`0`, "00"}, {`127`, "7f"}, {`128`, "cc80"}, {`-1`, "ff"}, {`-32`, "e0"}, {`-33`, "d0df"},
		{`65536`, "ce00010000"}, {`-32769`, "d2ffff7fff"},
		{`18446744073709551615`, "cfffffffffffffffff"}, {`-9223372036854775808`, "d38000000000000000"},
		{`1.5`, "cb3ff8000000000000"}, {`1.0`, "cb3ff0000000000000"}, {`1e3`, "cb408f400000000000"},
		{`-0.0`, "cb8000000000000000"}, {`-0`, "cb8000000000000000"}, {`-0e0`, "cb8000000000000000"},
		{`18446744073709551616`, "cb43f0000000000000"},
		{`1e400`, "cb7ff0000000000000"}, {`-1e400`, "cbfff0000000000000"},
		{`true`, "c3"}, {`false`, "c2"}, {`null`, "c0"},
		{`""`, "a0"}, {`"a"`, "a161"}, {`[]`, "90"}, {`{}`, "80"},
		{`[1,2]`, "920102"}, {`{"a":null}`, "81a161c0"},
	} {
		out := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(tt.in))
		if got := fmt.Sprintf("%x", out); got != tt.want {
			t.Errorf("Convert(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// String, array and map headers at every size boundary, with escapes that
// make the converted string shorter than its JSON text.
func TestConvertJSONSizes(t *testing.T) {
	for _, n := range []int{0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000} {
		// string: n bytes, written with escapes
		var sb strings.Builder
		sb.WriteByte('"')
		for i := range n {
			if i%3 == 0 {
				sb.WriteString(`\n`)
			} else {
				sb.WriteByte('x')
			}
		}
		sb.WriteByte('"')
		in := sb.String()
		out := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(in))
		var want string
		_ = json.Unmarshal([]byte(in), &want)
		var got string
		if err := msgpack.Unmarshal(out, &got); err != nil || got != want {
			t.Errorf("string of %d bytes: %v, %d bytes", n, err, len(got))
		}
		ref, _ := msgpack.Marshal(want)
		if !bytes.Equal(out, ref) {
			t.Errorf("string of %d bytes: header %x, library %x", n, out[:min(5, len(out))], ref[:min(5, len(ref))])
		}

		if n != 0 && n != 1 && n != 15 && n != 16 && n != 65535 && n != 65536 {
			continue // no header boundary for arrays and maps
		}
		// array and object of n items, nested in an array with a sibling
		items := make([]string, n)
		keys := make([]string, n)
		for i := range items {
			items[i] = strconv.Itoa(i % 100)
			keys[i] = fmt.Sprintf(`"k%d":%d`, i, i%100)
		}
		for _, in := range []string{
			"[" + strings.Join(items, ",") + "]",
			"{" + strings.Join(keys, ",") + "}",
			`[["x"],[` + strings.Join(items, ",") + `],{"a":{` + strings.Join(keys, ",") + `}},"end"]`,
		} {
			out := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(in))
			j := decodeJSONValue(t, []byte(in))
			if d := sameAsMsgpack("", j, decodeMsgpackValue(t, out)); d != "" {
				t.Errorf("%d items: %s", n, d)
			}
			back := mustConvert(t, protocol.Msgpack, protocol.JSON, out)
			if d := sameJSON("", j, decodeJSONValue(t, back)); d != "" {
				t.Errorf("%d items round trip: %s", n, d)
			}
		}
	}
}

// ---- msgpack → JSON ---------------------------------------------------------

type mpCase struct {
	name string
	in   []byte
	want string // JSON, compared by value
	text string // if set, the exact output
}

func mpWith(t testing.TB, fn func(e *msgpack.Encoder) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := fn(e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ext(typ int8, body []byte) []byte {
	var b []byte
	switch len(body) {
	case 1, 2, 4, 8, 16:
		b = []byte{map[int]byte{1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}[len(body)]}
	default:
		switch {
		case len(body) <= 0xff:
			b = []byte{0xc7, byte(len(body))}
		case len(body) <= 0xffff:
			b = binary.BigEndian.AppendUint16([]byte{0xc8}, uint16(len(body)))
		default:
			b = binary.BigEndian.AppendUint32([]byte{0xc9}, uint32(len(body)))
		}
	}
	b = append(b, byte(typ))
	return append(b, body...)
}

func tsString(tm time.Time) string {
	return strconv.Quote(tm.UTC().Format(time.RFC3339Nano))
}

func b64(b []byte) string { return strconv.Quote(base64.StdEncoding.EncodeToString(b)) }

func extJSON(typ int8, body []byte) string {
	return fmt.Sprintf(`{"$ext":%d,"data":%s}`, typ, b64(body))
}

func msgpackCases(t testing.TB) []mpCase {
	enc := func(v any) []byte { return mpEncode(t, v) }
	w := func(fn func(e *msgpack.Encoder) error) []byte { return mpWith(t, fn) }
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * 7)
		}
		return b
	}
	t32 := time.Unix(1700000000, 0)
	t64 := time.Unix(1700000000, 123456789)
	tPre := time.Unix(-1234567890, 5)
	tFar := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	ts96 := func(sec int64, nsec uint32) []byte {
		b := binary.BigEndian.AppendUint32(nil, nsec)
		return ext(-1, binary.BigEndian.AppendUint64(b, uint64(sec)))
	}
	nan32 := w(func(e *msgpack.Encoder) error { return e.EncodeFloat32(float32(math.NaN())) })
	return []mpCase{
		// integers of every width
		{"fixint 0", []byte{0x00}, `0`, `0`},
		{"fixint 127", []byte{0x7f}, `127`, `127`},
		{"negative fixint -1", []byte{0xff}, `-1`, `-1`},
		{"negative fixint -32", []byte{0xe0}, `-32`, `-32`},
		{"uint8", w(func(e *msgpack.Encoder) error { return e.EncodeUint8(200) }), `200`, `200`},
		{"uint8 small", w(func(e *msgpack.Encoder) error { return e.EncodeUint8(1) }), `1`, `1`},
		{"uint16", w(func(e *msgpack.Encoder) error { return e.EncodeUint16(65535) }), `65535`, ""},
		{"uint32", w(func(e *msgpack.Encoder) error { return e.EncodeUint32(math.MaxUint32) }), `4294967295`, ""},
		{"uint64", w(func(e *msgpack.Encoder) error { return e.EncodeUint64(math.MaxUint64) }), `18446744073709551615`, `18446744073709551615`},
		{"uint64 small", w(func(e *msgpack.Encoder) error { return e.EncodeUint64(3) }), `3`, ""},
		{"int8 negative", w(func(e *msgpack.Encoder) error { return e.EncodeInt8(-100) }), `-100`, `-100`},
		{"int8 min", w(func(e *msgpack.Encoder) error { return e.EncodeInt8(math.MinInt8) }), `-128`, ""},
		{"int8 positive", w(func(e *msgpack.Encoder) error { return e.EncodeInt8(5) }), `5`, ""},
		{"int16", w(func(e *msgpack.Encoder) error { return e.EncodeInt16(-30000) }), `-30000`, ""},
		{"int16 min", w(func(e *msgpack.Encoder) error { return e.EncodeInt16(math.MinInt16) }), `-32768`, ""},
		{"int32", w(func(e *msgpack.Encoder) error { return e.EncodeInt32(math.MinInt32) }), `-2147483648`, ""},
		{"int32 max", w(func(e *msgpack.Encoder) error { return e.EncodeInt32(math.MaxInt32) }), `2147483647`, ""},
		{"int64 min", w(func(e *msgpack.Encoder) error { return e.EncodeInt64(math.MinInt64) }), `-9223372036854775808`, `-9223372036854775808`},
		{"int64 max", w(func(e *msgpack.Encoder) error { return e.EncodeInt64(math.MaxInt64) }), `9223372036854775807`, ""},
		{"int64 -1", w(func(e *msgpack.Encoder) error { return e.EncodeInt64(-1) }), `-1`, ""},

		// floats
		{"float64", enc(1.5), `1.5`, `1.5`},
		{"float64 integral", enc(2.0), `2`, ""},
		{"float64 negative zero", enc(math.Copysign(0, -1)), `-0`, ""},
		{"float64 tenth", enc(0.1), `0.1`, `0.1`},
		{"float64 pi", enc(math.Pi), `3.141592653589793`, ""},
		{"float64 big", enc(1e300), `1e300`, ""},
		{"float64 1e21", enc(1e21), `1e21`, ""},
		{"float64 under 1e21", enc(1e20), `100000000000000000000`, ""},
		{"float64 small", enc(1e-7), `1e-7`, ""},
		{"float64 denormal", enc(5e-324), `5e-324`, ""},
		{"float64 max", enc(math.MaxFloat64), `1.7976931348623157e308`, ""},
		{"float32", enc(float32(0.1)), `0.1`, `0.1`},
		{"float32 value", enc(float32(-2.5)), `-2.5`, ""},
		{"float32 max", enc(float32(math.MaxFloat32)), `3.4028235e38`, ""},
		{"float32 small", enc(float32(1e-8)), `1e-8`, ""},
		{"NaN", enc(math.NaN()), `"NaN"`, `"NaN"`},
		{"+Inf", enc(math.Inf(1)), `"+Inf"`, `"+Inf"`},
		{"-Inf", enc(math.Inf(-1)), `"-Inf"`, `"-Inf"`},
		{"float32 NaN", nan32, `"NaN"`, `"NaN"`},
		{"float32 +Inf", enc(float32(math.Inf(1))), `"+Inf"`, `"+Inf"`},
		{"float32 -Inf", enc(float32(math.Inf(-1))), `"-Inf"`, `"-Inf"`},

		// nil and booleans
		{"nil", enc(nil), `null`, `null`},
		{"true", enc(true), `true`, `true`},
		{"false", enc(false), `false`, `false`},

		// strings
		{"empty str", enc(""), `""`, `""`},
		{"str", enc("héllo"), `"héllo"`, `"héllo"`},
		{"str escapes", enc("a\"b\\c\n\x00\x1f</>"), `"a\"b\\c\n\u0000\u001f</>"`, ""},
		{"str8", enc(strings.Repeat("s", 200)), `"` + strings.Repeat("s", 200) + `"`, ""},
		{"str16", enc(strings.Repeat("é", 1000)), `"` + strings.Repeat("é", 1000) + `"`, ""},
		{"str32", enc(strings.Repeat("x", 70000)), `"` + strings.Repeat("x", 70000) + `"`, ""},
		{"str invalid UTF-8", enc("a\xffb"), `"a\ufffdb"`, ""},
		{"str truncated UTF-8", enc("é\xc3"), `"é\ufffd"`, ""},
		{"str surrogate UTF-8", enc("\xed\xa0\x80"), `"\ufffd\ufffd\ufffd"`, ""},
		{"str8 short", w(func(e *msgpack.Encoder) error { return e.EncodeString("ab") }), `"ab"`, ""},

		// bin: standard padded base64
		{"bin empty", enc([]byte{}), `""`, `""`},
		{"bin 1", enc([]byte{0xff}), `"/w=="`, `"/w=="`},
		{"bin 2", enc([]byte{0xfb, 0xff}), `"+/8="`, `"+/8="`},
		{"bin 3", enc([]byte("foo")), `"Zm9v"`, `"Zm9v"`},
		{"bin 4", enc([]byte("foob")), `"Zm9vYg=="`, ""},
		{"bin16", enc(seq(300)), b64(seq(300)), b64(seq(300))},
		{"bin32", enc(seq(70000)), b64(seq(70000)), ""},

		// arrays
		{"empty array", enc([]any{}), `[]`, `[]`},
		{"array", enc([]any{1, "a", nil, true, 1.5}), `[1,"a",null,true,1.5]`, `[1,"a",null,true,1.5]`},
		{"array16", enc(make([]any, 20)), "[" + strings.Repeat("null,", 19) + "null]", ""},
		{"array16 empty", []byte{0xdc, 0, 0}, `[]`, `[]`},
		{"array32 small", []byte{0xdd, 0, 0, 0, 2, 1, 2}, `[1,2]`, `[1,2]`},
		{"nested arrays", enc([]any{[]any{[]any{}}, []any{1}}), `[[[]],[1]]`, ""},

		// maps
		{"empty map", enc(map[string]any{}), `{}`, `{}`},
		{"map", enc(map[string]any{"a": 1, "b": []any{"x"}}), `{"a":1,"b":["x"]}`, `{"a":1,"b":["x"]}`},
		{"map16", enc(map[string]any{"0": 0, "1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 6, "7": 7, "8": 8, "9": 9, "a": 10, "b": 11, "c": 12, "d": 13, "e": 14, "f": 15, "g": 16}),
			`{"0":0,"1":1,"2":2,"3":3,"4":4,"5":5,"6":6,"7":7,"8":8,"9":9,"a":10,"b":11,"c":12,"d":13,"e":14,"f":15,"g":16}`, ""},
		{"map32 small", []byte{0xdf, 0, 0, 0, 1, 0xa1, 'k', 0xc3}, `{"k":true}`, `{"k":true}`},
		{"map key escapes", enc(map[string]any{"a\"\n\xff": 1}), `{"a\"\n\ufffd":1}`, ""},
		{"map int key", mpMap(t, 1, "one"), `{"1":"one"}`, `{"1":"one"}`},
		{"map negative key", mpMap(t, -5, "x"), `{"-5":"x"}`, `{"-5":"x"}`},
		{"map uint64 key", mpMap(t, uint64(math.MaxUint64), 0), `{"18446744073709551615":0}`, ""},
		{"map bool keys", mpMap(t, true, 1, false, 0), `{"true":1,"false":0}`, `{"true":1,"false":0}`},
		{"map nil key", mpMap(t, nil, 1), `{"null":1}`, `{"null":1}`},
		{"map float key", mpMap(t, 1.5, 1), `{"1.5":1}`, `{"1.5":1}`},
		{"map NaN key", mpMap(t, math.NaN(), 1), `{"NaN":1}`, `{"NaN":1}`},
		{"map bin key", mpMap(t, []byte("foo"), 1), `{"Zm9v":1}`, `{"Zm9v":1}`},
		{"map array key", mpMap(t, []any{1, "a"}, 1), `{"[1,\"a\"]":1}`, `{"[1,\"a\"]":1}`},
		{"map map key", mpMap(t, map[string]any{"a": 1}, 2), `{"{\"a\":1}":2}`, `{"{\"a\":1}":2}`},
		{"map timestamp key", mpMap(t, mpRaw(ext(-1, binary.BigEndian.AppendUint32(nil, 0))), 1), `{"1970-01-01T00:00:00Z":1}`, ""},
		{"map ext key", mpMap(t, mpRaw(ext(3, []byte{1})), 1), `{"{\"$ext\":3,\"data\":\"AQ==\"}":1}`, ""},
		{"map mixed keys", mpMap(t, "a", 1, 2, "b", mpRaw{0xc3}, nil), `{"a":1,"2":"b","true":null}`, ""},

		// timestamps
		{"timestamp 32", w(func(e *msgpack.Encoder) error { return e.EncodeTime(t32) }), tsString(t32), tsString(t32)},
		{"timestamp 64", w(func(e *msgpack.Encoder) error { return e.EncodeTime(t64) }), tsString(t64), `"2023-11-14T22:13:20.123456789Z"`},
		{"timestamp 96 before 1970", w(func(e *msgpack.Encoder) error { return e.EncodeTime(tPre) }), tsString(tPre), tsString(tPre)},
		{"timestamp 96 year 9999", w(func(e *msgpack.Encoder) error { return e.EncodeTime(tFar) }), tsString(tFar), `"9999-12-31T23:59:59.999999999Z"`},
		{"timestamp 96 year 0", ts96(-62167219200, 0), `"0000-01-01T00:00:00Z"`, ""},
		{"timestamp epoch", ext(-1, []byte{0, 0, 0, 0}), `"1970-01-01T00:00:00Z"`, `"1970-01-01T00:00:00Z"`},
		{"timestamp 64 max", ext(-1, []byte{0xee, 0x6b, 0x27, 0xff, 0xff, 0xff, 0xff, 0xff}), tsString(time.Unix(1<<34-1, 999999999)), ""},
		{"timestamp 64 bad nsec", ext(-1, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), extJSON(-1, []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}), ""},
		{"timestamp 96 bad nsec", ts96(0, 1e9), extJSON(-1, ts96(0, 1e9)[3:]), ""},
		{"timestamp 96 year 10000", ts96(253402300800, 0), extJSON(-1, ts96(253402300800, 0)[3:]), ""},
		{"timestamp 96 year -1", ts96(-62167219201, 0), extJSON(-1, ts96(-62167219201, 0)[3:]), ""},
		{"timestamp 96 max", ts96(math.MaxInt64, 999999999), extJSON(-1, ts96(math.MaxInt64, 999999999)[3:]), ""},
		{"timestamp 96 min", ts96(math.MinInt64, 0), extJSON(-1, ts96(math.MinInt64, 0)[3:]), ""},
		{"timestamp wrong size", ext(-1, []byte{1, 2}), `{"$ext":-1,"data":"AQI="}`, `{"$ext":-1,"data":"AQI="}`},
		{"timestamp empty", ext(-1, nil), `{"$ext":-1,"data":""}`, ""},

		// other extensions
		{"fixext1", ext(5, []byte{0xff}), `{"$ext":5,"data":"/w=="}`, `{"$ext":5,"data":"/w=="}`},
		{"fixext2", ext(1, []byte{1, 2}), `{"$ext":1,"data":"AQI="}`, ""},
		{"fixext4", ext(127, []byte("abcd")), `{"$ext":127,"data":"YWJjZA=="}`, ""},
		{"fixext8", ext(0, seq(8)), `{"$ext":0,"data":` + b64(seq(8)) + `}`, ""},
		{"fixext16", ext(-128, seq(16)), `{"$ext":-128,"data":` + b64(seq(16)) + `}`, ""},
		{"ext8 empty", ext(9, nil), `{"$ext":9,"data":""}`, `{"$ext":9,"data":""}`},
		{"ext8", ext(-5, []byte("foo")), `{"$ext":-5,"data":"Zm9v"}`, `{"$ext":-5,"data":"Zm9v"}`},
		{"ext16", ext(2, seq(300)), `{"$ext":2,"data":` + b64(seq(300)) + `}`, ""},
		{"ext32", ext(2, seq(70000)), `{"$ext":2,"data":` + b64(seq(70000)) + `}`, ""},
		{"ext8 long form of 4 bytes", []byte{0xc7, 4, 7, 1, 2, 3, 4}, `{"$ext":7,"data":"AQIDBA=="}`, ""},

		// nested mixtures
		{"nested", mpMap(t, "bin", []byte{1, 2, 3}, "list", []any{math.Inf(1), map[string]any{"t": true}}, 7, mpRaw(ext(4, []byte{9})), "ts", mpRaw(ext(-1, []byte{0, 0, 0, 1}))),
			`{"bin":"AQID","list":["+Inf",{"t":true}],"7":{"$ext":4,"data":"CQ=="},"ts":"1970-01-01T00:00:01Z"}`, ""},
	}
}

func TestConvertMsgpackToJSON(t *testing.T) {
	for _, tc := range msgpackCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			if !protocol.ValidMsgpack(tc.in) {
				t.Fatalf("ValidMsgpack(%x) = false", tc.in)
			}
			out, err := protocol.Convert([]byte("pre"), protocol.Msgpack, protocol.JSON, tc.in)
			if err != nil {
				t.Fatalf("Convert(%x): %v", tc.in, err)
			}
			if !bytes.HasPrefix(out, []byte("pre")) {
				t.Fatal("dst prefix lost")
			}
			out = out[3:]
			if !json.Valid(out) || !protocol.ValidJSON(out) {
				t.Fatalf("Convert(%x) = %q: invalid JSON", tc.in, truncForLog(out))
			}
			if tc.text != "" && string(out) != tc.text {
				t.Errorf("Convert(%x) = %s, want %s", truncForLog(tc.in), truncForLog(out), tc.text)
			}
			if d := sameJSON("", decodeJSONValue(t, []byte(tc.want)), decodeJSONValue(t, out)); d != "" {
				t.Errorf("Convert(%x) = %s: %s", truncForLog(tc.in), truncForLog(out), d)
			}
		})
	}
}

func truncForLog(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

// Timestamps come out as RFC 3339 strings that read back as the same
// instant, for the library's own encodings of many instants.
func TestConvertTimestamps(t *testing.T) {
	for _, tm := range []time.Time{
		time.Unix(0, 0), time.Unix(1, 1), time.Unix(1<<32-1, 0), time.Unix(1<<32, 0), time.Unix(1<<34-1, 999999999),
		time.Unix(1<<34, 0), time.Unix(-1, 999999999), time.Unix(-62135596800, 0), time.Date(2024, 2, 29, 12, 0, 0, 500, time.FixedZone("x", 3600)),
	} {
		in := mpWith(t, func(e *msgpack.Encoder) error { return e.EncodeTime(tm) })
		out := mustConvert(t, protocol.Msgpack, protocol.JSON, in)
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("%v: %s: %v", tm, out, err)
		}
		back, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || !back.Equal(tm) {
			t.Errorf("%v: %s reads back as %v, %v", tm, out, back, err)
		}
	}
}

// ---- errors and dst handling -------------------------------------------------

func TestConvertInvalid(t *testing.T) {
	deepJSON := strings.Repeat("[", protocol.MaxDepth+1) + strings.Repeat("]", protocol.MaxDepth+1)
	deepMP := append(bytes.Repeat([]byte{0x91}, protocol.MaxDepth), 0x90)
	deepMPKey := append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, protocol.MaxDepth-1), 0x81, 0x90, 1) // key is the 101st level
	jsonBad := []string{
		``, ` `, `{`, `[1,`, `[1 2]`, `{"a"}`, `{"a":}`, `{1:2}`, `{"a":1,}`, `[1,]`, `tru`, `nul`, `01`, `1.`, `.1`, `-`, `+1`,
		`1e`, `"abc`, `"\x"`, `"\u12"`, "\"\x01\"", `NaN`, `Infinity`, `1 2`, `[] []`, `{}x`, `'a'`, "\xff", deepJSON,
	}
	for _, in := range jsonBad {
		dst := []byte("keep")
		out, err := protocol.Convert(dst, protocol.JSON, protocol.Msgpack, []byte(in))
		if err == nil {
			t.Errorf("Convert JSON %q: no error (%x)", in, out)
			continue
		}
		var pe *protocol.Error
		if e, ok := err.(*protocol.Error); !ok {
			t.Errorf("Convert JSON %q: error %T", in, err)
		} else {
			pe = e
			if pe.Code != protocol.CodeBadFrame {
				t.Errorf("Convert JSON %q: %v", in, err)
			}
		}
		if string(out) != "keep" {
			t.Errorf("Convert JSON %q: dst became %q", in, out)
		}
		if protocol.ValidJSON([]byte(in)) {
			t.Errorf("ValidJSON(%q) = true", in)
		}
	}
	mpBad := [][]byte{
		nil, {0xc1}, {0x91}, {0x92, 1}, {0x81, 1}, {0xcd, 1}, {0xcf, 0, 0, 0}, {0xd3}, {0xca, 0}, {0xcb, 0, 0},
		{0xa3, 'a'}, {0xd9}, {0xd9, 5, 'a'}, {0xda, 0}, {0xdb, 0, 0, 0, 9}, {0xc4}, {0xc4, 2, 1}, {0xc5, 0}, {0xc6, 0, 0, 0, 1},
		{0xd4, 1}, {0xd8, 1, 0}, {0xc7}, {0xc7, 1, 1}, {0xc8, 0}, {0xc9, 0, 0, 0, 1, 1}, {0xdc, 0}, {0xdc, 0, 1},
		{0xdd, 0xff, 0xff, 0xff, 0xff}, {0xde, 0}, {0xde, 0, 1, 1}, {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2},
		// lengths that do not fit in a 32-bit int
		{0xc9, 0xff, 0xff, 0xff, 0xff, 1}, {0xc9, 0x80, 0, 0, 0, 1, 2}, {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'},
		{0xc6, 0x80, 0, 0, 0, 1}, {0xdd, 0x80, 0, 0, 0, 1}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdf, 0x80, 0, 0, 0, 1, 1},
		{0xdf, 0x40, 0, 0, 0, 1, 1}, {0xdf, 0x7f, 0xff, 0xff, 0xff, 1, 1}, {0x91, 0xdb, 0x80, 0, 0, 0},
		{0xc9, 0x7f, 0xff, 0xff, 0xff, 1}, {0x92, 0xc9, 0x7f, 0xff, 0xff, 0xff, 1}, {0xdb, 0x7f, 0xff, 0xff, 0xff, 1},
		{0xc6, 0x7f, 0xff, 0xff, 0xff, 1}, {0xdd, 0x7f, 0xff, 0xff, 0xff, 1}, {0xdf, 0x7f, 0xff, 0xff, 0xff},
		{0x01, 0x02}, {0x90, 0x90}, {0x91, 0xc1}, {0x81, 0xc1, 1}, {0x81, 0x91, 0xc1, 1}, deepMP, deepMPKey,
	}
	for _, in := range mpBad {
		dst := []byte("keep")
		out, err := protocol.Convert(dst, protocol.Msgpack, protocol.JSON, in)
		if err == nil {
			t.Errorf("Convert msgpack %x: no error (%q)", in, out)
			continue
		}
		if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeBadFrame {
			t.Errorf("Convert msgpack %x: %v", in, err)
		}
		if string(out) != "keep" {
			t.Errorf("Convert msgpack %x: dst became %q", in, out)
		}
		if protocol.ValidMsgpack(in) {
			t.Errorf("ValidMsgpack(%x) = true", in)
		}
	}
	// a nil *Error must not become a non-nil error
	if _, err := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, []byte(`1`)); err != nil {
		t.Errorf("err = %#v", err)
	}
	if _, err := protocol.Convert(nil, protocol.Msgpack, protocol.JSON, []byte{1}); err != nil {
		t.Errorf("err = %#v", err)
	}
}

// Nesting of exactly MaxDepth converts both ways; the limit agrees with
// ValidJSON and ValidMsgpack.
func TestConvertDepth(t *testing.T) {
	d := protocol.MaxDepth
	for _, in := range []string{
		strings.Repeat("[", d) + strings.Repeat("]", d),
		strings.Repeat(`{"k":`, d) + "1" + strings.Repeat("}", d),
		strings.Repeat(`[{"k":`, d/2-1) + "[[]]" + strings.Repeat("}]", d/2-1),
	} {
		mp := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(in))
		if !protocol.ValidMsgpack(mp) {
			t.Errorf("depth %d: ValidMsgpack false", d)
		}
		back := mustConvert(t, protocol.Msgpack, protocol.JSON, mp)
		if string(back) != in || !protocol.ValidJSON(back) {
			t.Errorf("depth %d: round trip %q", d, truncForLog(back))
		}
	}
	// a map key counts as one level deeper than its map
	key := append(bytes.Repeat([]byte{0x81, 0xa1, 'k'}, d-2), 0x81, 0x90, 1)
	if !protocol.ValidMsgpack(key) {
		t.Fatal("ValidMsgpack refuses a key at the limit")
	}
	if out := mustConvert(t, protocol.Msgpack, protocol.JSON, key); !protocol.ValidJSON(out) {
		t.Errorf("key at the limit: %s", out)
	}
}

func TestConvertSameCodec(t *testing.T) {
	for c, in := range map[protocol.Codec][]byte{protocol.JSON: []byte("[1,2,3]"), protocol.Msgpack: {0x93, 1, 2, 3}} {
		first := in[0]
		out, err := protocol.Convert([]byte("x"), c, c, in)
		if err != nil || string(out) != "x"+string(in) {
			t.Fatalf("%s: %q %v", c, out, err)
		}
		in[0] = 0 // out must not alias in
		if out[1] != first {
			t.Errorf("%s: output aliases input", c)
		}
	}
	// the value is checked as in a conversion
	for _, tc := range []struct {
		c    protocol.Codec
		in   string
		want bool
	}{
		{protocol.JSON, ` {"a":[1,2.5,"x"]} `, true},
		{protocol.JSON, `{"a":1`, false},
		{protocol.JSON, `1 2`, false},
		{protocol.JSON, ``, false},
		{protocol.JSON, strings.Repeat("[", protocol.MaxDepth+1) + strings.Repeat("]", protocol.MaxDepth+1), false},
		{protocol.Msgpack, "\x92\x01\xa1x", true},
		{protocol.Msgpack, "\x92\x01", false},
		{protocol.Msgpack, "\x01\x02", false},
		{protocol.Msgpack, "\xc1", false},
		{protocol.Msgpack, "", false},
	} {
		out, err := protocol.Convert([]byte("x"), tc.c, tc.c, []byte(tc.in))
		if tc.want && (err != nil || string(out) != "x"+tc.in) {
			t.Errorf("Convert(%s, %q) = %q, %v", tc.c, tc.in, out, err)
		}
		if !tc.want {
			if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeBadFrame || string(out) != "x" {
				t.Errorf("Convert(%s, %q) = %q, %v; want bad_frame", tc.c, tc.in, out, err)
			}
		}
	}
}

// ---- round trips ---------------------------------------------------------------

// JSON → msgpack → JSON preserves the value (numbers by decimal value).
func TestConvertRoundTripJSON(t *testing.T) {
	for _, in := range jsonValues {
		if in == `1e-400` || strings.Contains(in, "e400") {
			continue // underflow to 0 keeps the value only approximately
		}
		mp := mustConvert(t, protocol.JSON, protocol.Msgpack, []byte(in))
		back := mustConvert(t, protocol.Msgpack, protocol.JSON, mp)
		if !json.Valid(back) {
			t.Fatalf("%s: invalid JSON %q", in, back)
		}
		j, b := decodeJSONValue(t, []byte(in)), decodeJSONValue(t, back)
		if in == `123456789012345678901234567890` || in == `100000000000000000000000` || in == `18446744073709551616` ||
			in == `-9223372036854775809` || in == `1e308` || in == `1.7976931348623157e308` || in == `5e-324` ||
			in == `0.1` || in == `3.141592653589793` || in == `12345678.9` || in == `2.5E-3` || in == `0.000001` || in == `1e-7` {
			// not exact in binary: compare as float64
			f1, _ := strconv.ParseFloat(string(j.(json.Number)), 64)
			f2, _ := strconv.ParseFloat(string(b.(json.Number)), 64)
			if f1 != f2 {
				t.Errorf("%s: round trip %s", in, back)
			}
			continue
		}
		if d := sameJSON("", j, b); d != "" {
			t.Errorf("%s: round trip %s: %s", in, back, d)
		}
		// after one round trip the JSON text is stable
		back2 := mustConvert(t, protocol.Msgpack, protocol.JSON, mustConvert(t, protocol.JSON, protocol.Msgpack, back))
		if !bytes.Equal(back, back2) {
			t.Errorf("%s: round trips give %s then %s", in, back, back2)
		}
	}
}

// msgpack → JSON → msgpack preserves values that JSON can hold: integers,
// float64, str, arrays and maps with str keys.
func TestConvertRoundTripMsgpack(t *testing.T) {
	values := []any{
		int64(0), int64(-1), int64(math.MinInt64), uint64(math.MaxUint64), 1.5, -0.1, 1e300, 5e-324, math.MaxFloat64,
		"", "héllo", strings.Repeat("x", 300), []any{}, map[string]any{},
		[]any{int64(1), "a", nil, true, false, 2.5, []any{map[string]any{"k": "v"}}},
		map[string]any{"a": []any{int64(1), int64(2)}, "b": map[string]any{"c": nil}, "\u00e9\n": "x"},
	}
	for _, v := range values {
		in := mpEncode(t, v)
		j := mustConvert(t, protocol.Msgpack, protocol.JSON, in)
		back := mustConvert(t, protocol.JSON, protocol.Msgpack, j)
		got := decodeMsgpackValue(t, back)
		want := decodeMsgpackValue(t, in)
		if d := sameMsgpack(want, got); d != "" {
			t.Errorf("%#v: via %s: %s", v, j, d)
		}
	}
}

// sameMsgpack compares library-decoded values, integers by value.
func sameMsgpack(a, b any) string {
	if ai, ok := mpInt(a); ok {
		if bi, ok := mpInt(b); !ok || ai.Cmp(bi) != 0 {
			return fmt.Sprintf("%#v != %#v", a, b)
		}
		return ""
	}
	if af, ok := a.(float64); ok {
		// a float64 with an integral value may come back as an integer
		if bi, ok := mpInt(b); ok {
			if new(big.Float).SetInt(bi).Cmp(big.NewFloat(af)) != 0 {
				return fmt.Sprintf("%v != %v", a, b)
			}
			return ""
		}
	}
	switch a := a.(type) {
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return fmt.Sprintf("%#v != %#v", a, b)
		}
		for i := range a {
			if d := sameMsgpack(a[i], bs[i]); d != "" {
				return d
			}
		}
		return ""
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return fmt.Sprintf("%#v != %#v", a, b)
		}
		for k, v := range a {
			if d := sameMsgpack(v, bm[k]); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("%#v != %#v", a, b)
	}
	return ""
}
