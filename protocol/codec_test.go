package protocol_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// ---- helpers -------------------------------------------------------------

// mpRaw is a value written into a msgpack document as is.
type mpRaw []byte

// mpEncode encodes v with the reference msgpack library, or writes it as is
// when it is mpRaw.
func mpEncode(t testing.TB, v any) []byte {
	t.Helper()
	if r, ok := v.(mpRaw); ok {
		return r
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("msgpack encode %#v: %v", v, err)
	}
	return buf.Bytes()
}

// mpMap builds a msgpack map from alternating keys and values, in order.
func mpMap(t testing.TB, kvs ...any) []byte {
	t.Helper()
	if len(kvs)%2 != 0 {
		t.Fatal("mpMap: odd number of arguments")
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeMapLen(len(kvs) / 2); err != nil {
		t.Fatal(err)
	}
	for _, v := range kvs {
		buf.Write(mpEncode(t, v))
	}
	return buf.Bytes()
}

// jsonMap builds a JSON object from alternating keys and values, in order.
// Values of type json.RawMessage are written as is.
func jsonMap(t testing.TB, kvs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i := 0; i < len(kvs); i += 2 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(jsonEncode(t, kvs[i]))
		buf.WriteByte(':')
		buf.Write(jsonEncode(t, kvs[i+1]))
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

func jsonEncode(t testing.TB, v any) []byte {
	t.Helper()
	if r, ok := v.(json.RawMessage); ok {
		return r
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json encode %#v: %v", v, err)
	}
	return b
}

// checkErr asserts err has the code and a readable reason mentioning each
// of mention.
func checkErr(t *testing.T, err *protocol.Error, code string, mention ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if err.Code != code {
		t.Errorf("code %q (reason %q), want %q", err.Code, err.Reason, code)
	}
	checkReadable(t, "reason", err.Reason)
	for _, m := range mention {
		if !strings.Contains(err.Reason, m) {
			t.Errorf("reason %q does not mention %q", err.Reason, m)
		}
	}
}

// within reports whether sub is a sub-slice of b.
func within(sub, b []byte) bool {
	if len(sub) == 0 || len(b) == 0 {
		return false
	}
	s := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return s >= lo && s+uintptr(len(sub)) <= lo+uintptr(len(b))
}

func dumpFrame(f *protocol.Frame) string {
	g := *f
	g.Data = nil
	b, _ := json.Marshal(g)
	return string(b) + " data=" + string(f.Data)
}

// ---- misc API --------------------------------------------------------------

func TestCodecNames(t *testing.T) {
	if protocol.JSON.String() != "json" || protocol.Msgpack.String() != "msgpack" {
		t.Errorf("String: %v %v", protocol.JSON, protocol.Msgpack)
	}
	if got := protocol.Codec(7).String(); got != "codec(7)" {
		t.Errorf("Codec(7).String() = %q", got)
	}
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		got, ok := protocol.CodecForSubprotocol(c.Subprotocol())
		if !ok || got != c {
			t.Errorf("CodecForSubprotocol(%q) = %v, %v", c.Subprotocol(), got, ok)
		}
	}
	if protocol.JSON.Subprotocol() != "ferry.v1.json" || protocol.Msgpack.Subprotocol() != "ferry.v1.msgpack" {
		t.Error("subprotocol names changed")
	}
	for _, name := range []string{"", "ferry.v1", "ferry.v2.json", "FERRY.V1.JSON", "json"} {
		if _, ok := protocol.CodecForSubprotocol(name); ok {
			t.Errorf("CodecForSubprotocol(%q) accepted", name)
		}
	}
	if protocol.NumCodecs != 2 {
		t.Errorf("NumCodecs = %d", protocol.NumCodecs)
	}
}

func TestIsClientOp(t *testing.T) {
	for _, op := range []string{"sub", "unsub", "pub", "ack", "nack", "ping"} {
		if !protocol.IsClientOp(op) {
			t.Errorf("IsClientOp(%q) = false", op)
		}
	}
	for _, op := range []string{"", "msg", "err", "pong", "SUB", "sub "} {
		if protocol.IsClientOp(op) {
			t.Errorf("IsClientOp(%q) = true", op)
		}
	}
}

func TestErrorf(t *testing.T) {
	e := protocol.Errorf(protocol.CodeBadFrame, "field %q: %d", "id", 3)
	if e.Code != "bad_frame" || e.Reason != `field "id": 3` || e.Error() != `bad_frame: field "id": 3` {
		t.Errorf("Errorf: %#v %q", e, e.Error())
	}
	var f protocol.Frame
	f.Op, f.ID, f.HasID, f.Data = "pub", 3, true, []byte("1")
	f.Reset()
	if !reflect.DeepEqual(f, protocol.Frame{}) {
		t.Errorf("Reset left %+v", f)
	}
}

// ---- decoding valid frames ----------------------------------------------

// frameCase is a client frame given as ordered fields, so that it can be
// written in both codecs. The "data" value is encoded by each codec; the
// expected frame gets the encoded bytes as Data.
type frameCase struct {
	name   string
	fields []any
	want   protocol.Frame
}

var validFrames = []frameCase{
	{"sub all fields", []any{"op", "sub", "topic", "a/+/#", "id", 1, "group", "workers", "ack", true, "inflight", 16},
		protocol.Frame{Op: "sub", Topic: "a/+/#", ID: 1, HasID: true, Group: "workers", Ack: true, Inflight: 16, HasInflight: true}},
	{"sub minimal", []any{"op", "sub", "topic", "x"},
		protocol.Frame{Op: "sub", Topic: "x"}},
	{"sub ack false inflight zero", []any{"op", "sub", "topic", "x", "ack", false, "inflight", 0},
		protocol.Frame{Op: "sub", Topic: "x", HasInflight: true}},
	{"unsub all fields", []any{"op", "unsub", "topic", "a/#", "id", 2, "group", "g"},
		protocol.Frame{Op: "unsub", Topic: "a/#", ID: 2, HasID: true, Group: "g"}},
	{"unsub minimal", []any{"op", "unsub", "topic", "a"},
		protocol.Frame{Op: "unsub", Topic: "a"}},
	{"pub all fields", []any{"op", "pub", "topic", "telemetry/d17/temp", "data", map[string]any{"c": 21.5, "ok": true, "tags": []any{"a", nil}}, "id", 3, "retain", true},
		protocol.Frame{Op: "pub", Topic: "telemetry/d17/temp", ID: 3, HasID: true, Retain: true}},
	{"pub data null", []any{"op", "pub", "topic", "t", "data", nil, "retain", true},
		protocol.Frame{Op: "pub", Topic: "t", Retain: true}},
	{"pub data string", []any{"op", "pub", "topic", "t", "data", "héllo \"world\""},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub data empty string", []any{"op", "pub", "topic", "t", "data", ""},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub data number", []any{"op", "pub", "topic", "t", "data", -12.75},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub data false", []any{"op", "pub", "topic", "t", "data", false},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub data array", []any{"op", "pub", "topic", "t", "data", []any{1, "two", []any{3.5}, map[string]any{}}},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub data before topic and op", []any{"data", []any{}, "topic", "t", "op", "pub"},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"pub retain false", []any{"op", "pub", "topic", "t", "data", 1, "retain", false},
		protocol.Frame{Op: "pub", Topic: "t"}},
	{"ack", []any{"op", "ack", "mid", 42},
		protocol.Frame{Op: "ack", Mid: 42, HasMid: true}},
	{"ack mid zero", []any{"op", "ack", "mid", 0},
		protocol.Frame{Op: "ack", HasMid: true}},
	{"ack mid max", []any{"op", "ack", "mid", uint64(math.MaxUint64)},
		protocol.Frame{Op: "ack", Mid: math.MaxUint64, HasMid: true}},
	{"nack", []any{"op", "nack", "mid", 70000},
		protocol.Frame{Op: "nack", Mid: 70000, HasMid: true}},
	{"ping with id", []any{"op", "ping", "id", 99},
		protocol.Frame{Op: "ping", ID: 99, HasID: true}},
	{"ping id zero", []any{"op", "ping", "id", 0},
		protocol.Frame{Op: "ping", HasID: true}},
	{"ping id max", []any{"op", "ping", "id", uint64(math.MaxUint64)},
		protocol.Frame{Op: "ping", ID: math.MaxUint64, HasID: true}},
	{"ping id 2^32", []any{"op", "ping", "id", uint64(1 << 32)},
		protocol.Frame{Op: "ping", ID: 1 << 32, HasID: true}},
	{"ping bare", []any{"op", "ping"},
		protocol.Frame{Op: "ping"}},
	{"unknown keys ignored", []any{"v", 2, "op", "ping", "extra", map[string]any{"nested": []any{1, map[string]any{"x": nil, "id": "not an id"}}}, "id", 5, "opts", []any{true, "x"}, "Op", "frob", "ID", "x"},
		protocol.Frame{Op: "ping", ID: 5, HasID: true}},
	{"null optional fields", []any{"op", "sub", "topic", "a", "id", nil, "group", nil, "ack", nil, "inflight", nil, "retain", nil, "mid", nil},
		protocol.Frame{Op: "sub", Topic: "a"}},
	{"null then value", []any{"op", "ping", "id", nil, "id", 8},
		protocol.Frame{Op: "ping", ID: 8, HasID: true}},
	{"last duplicate wins", []any{"op", "sub", "topic", "a", "topic", "b", "op", "unsub"},
		protocol.Frame{Op: "unsub", Topic: "b"}},
	{"broker fields decoded", []any{"op", "ping", "code", "c", "reason", "r", "mid", 3, "redelivered", true, "retained", true, "dropped", 4},
		protocol.Frame{Op: "ping", Code: "c", Reason: "r", Mid: 3, HasMid: true, Redelivered: true, Retained: true, Dropped: 4}},
	{"unicode topic", []any{"op", "sub", "topic", "données/😀/+"},
		protocol.Frame{Op: "sub", Topic: "données/😀/+"}},
	{"topic needing escapes", []any{"op", "sub", "topic", "a\"b\\c\n\t/\u2028"},
		protocol.Frame{Op: "sub", Topic: "a\"b\\c\n\t/\u2028"}},
}

// encodeCase writes a case in codec c and returns the frame bytes and the
// bytes of its data value (nil without one).
func encodeCase(t testing.TB, c protocol.Codec, fields []any) (frame, data []byte) {
	t.Helper()
	enc := mpEncode
	if c == protocol.JSON {
		enc = jsonEncode
	}
	conv := make([]any, len(fields))
	for i := 0; i < len(fields); i += 2 {
		conv[i] = fields[i]
		if fields[i] == "data" {
			data = enc(t, fields[i+1])
		}
		switch c {
		case protocol.JSON:
			conv[i+1] = json.RawMessage(enc(t, fields[i+1]))
		default:
			conv[i+1] = mpRaw(enc(t, fields[i+1]))
		}
	}
	if c == protocol.JSON {
		return jsonMap(t, conv...), data
	}
	return mpMap(t, conv...), data
}

func TestDecodeValid(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		for _, tc := range validFrames {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				b, data := encodeCase(t, c, tc.fields)
				want := tc.want
				want.Data = data
				var f protocol.Frame
				// a dirty frame must be reset by the decoder
				f.Op, f.Topic, f.Data, f.HasID, f.Ack, f.Code, f.Dropped = "x", "y", []byte("z"), true, true, "c", 9
				if err := protocol.Decode(c, b, &f); err != nil {
					t.Fatalf("Decode(%q): %v", b, err)
				}
				if !reflect.DeepEqual(f, want) {
					t.Errorf("Decode(%q)\n got %s\nwant %s", b, dumpFrame(&f), dumpFrame(&want))
				}
				if data != nil && !within(f.Data, b) {
					t.Errorf("Data is not a sub-slice of the input")
				}
			})
		}
	}
}

// JSON white space anywhere between tokens, and data passed byte-exactly.
func TestDecodeJSONWhitespaceAndExactData(t *testing.T) {
	data := "[ 1 ,\t2.50e+3 ,\n{ \"k\" : \"\\u00e9\\n\" } , null,-0,\"\\/\" ]"
	in := " \t\r\n{ \"op\" : \"pub\" ,\n\"topic\"\t:\"a/b\" , \"data\" :" + data + " , \"id\": 7 \r\n}\n "
	var f protocol.Frame
	if err := protocol.DecodeJSON([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	if string(f.Data) != data {
		t.Errorf("Data = %q, want %q", f.Data, data)
	}
	if f.Op != "pub" || f.Topic != "a/b" || f.ID != 7 || !f.HasID {
		t.Errorf("frame %s", dumpFrame(&f))
	}

	// msgpack data in non-minimal encodings is kept as is
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	_ = enc.EncodeArrayLen(4)
	_ = enc.EncodeInt64(1)    // 9 bytes for a small number
	_ = enc.EncodeUint32(2)   // 5 bytes
	_ = enc.EncodeFloat32(.5) // float32
	_ = enc.EncodeBytes([]byte{0, 1, 2})
	mdata := bytes.Clone(buf.Bytes())
	b := mpMap(t, "op", "pub", "topic", "a", "data", mpRaw(mdata))
	if err := protocol.DecodeMsgpack(b, &f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Data, mdata) {
		t.Errorf("Data = %x, want %x", f.Data, mdata)
	}
}

// Nesting up to MaxDepth is accepted in data and unknown keys; one more level
// is refused.
func TestDecodeDepth(t *testing.T) {
	const d = protocol.MaxDepth
	jsonNest := func(n int, inner string) string {
		return strings.Repeat("[", n) + inner + strings.Repeat("]", n)
	}
	jsonObjNest := func(n int) string {
		return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
	}
	mpNest := func(n int, inner []byte) []byte {
		return append(bytes.Repeat([]byte{0x91}, n), inner...)
	}
	mpMapNest := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, 0x81, 0xa1, 'a')
		}
		return append(b, 1)
	}
	var f protocol.Frame
	for _, key := range []string{"data", "unknown"} {
		for _, tc := range []struct {
			name string
			data string
			ok   bool
		}{
			{"arrays at limit", jsonNest(d, "1"), true},
			{"empty arrays at limit", jsonNest(d, ""), true},
			{"objects at limit", jsonObjNest(d), true},
			{"arrays over limit", jsonNest(d+1, "1"), false},
			{"empty arrays over limit", jsonNest(d+1, ""), false},
			{"empty object over limit", jsonNest(d, "{}"), false},
			{"objects over limit", jsonObjNest(d + 1), false},
			{"far over limit", jsonNest(100000, ""), false},
		} {
			in := `{"op":"pub","topic":"t","data":1,"` + key + `":` + tc.data + `}`
			err := protocol.DecodeJSON([]byte(in), &f)
			if tc.ok && err != nil {
				t.Errorf("json %s %s: %v", key, tc.name, err)
			}
			if !tc.ok {
				checkErr(t, err, protocol.CodeBadFrame, "nested")
			}
			if got := protocol.ValidJSON([]byte(tc.data)); got != tc.ok {
				t.Errorf("ValidJSON %s = %v", tc.name, got)
			}
		}
		for _, tc := range []struct {
			name string
			data []byte
			ok   bool
		}{
			{"arrays at limit", mpNest(d, []byte{1}), true},
			{"empty arrays at limit", mpNest(d-1, []byte{0x90}), true},
			{"maps at limit", mpMapNest(d), true},
			{"arrays over limit", mpNest(d+1, []byte{1}), false},
			{"empty array over limit", mpNest(d, []byte{0x90}), false},
			{"empty map over limit", mpNest(d, []byte{0x80}), false},
			{"empty array16 over limit", mpNest(d, []byte{0xdc, 0, 0}), false},
			{"empty map32 over limit", mpNest(d, []byte{0xdf, 0, 0, 0, 0}), false},
			{"maps over limit", mpMapNest(d + 1), false},
			{"far over limit", mpNest(100000, []byte{0x90}), false},
		} {
			b := mpMap(t, "op", "pub", "topic", "t", "data", 1, key, mpRaw(tc.data))
			err := protocol.DecodeMsgpack(b, &f)
			if tc.ok && err != nil {
				t.Errorf("msgpack %s %s: %v", key, tc.name, err)
			}
			if !tc.ok {
				checkErr(t, err, protocol.CodeBadFrame, "nested")
			}
			if got := protocol.ValidMsgpack(tc.data); got != tc.ok {
				t.Errorf("ValidMsgpack %s = %v", tc.name, got)
			}
		}
	}
}

// ---- decoding invalid frames ----------------------------------------------

type badCase struct {
	name    string
	in      []byte
	code    string
	mention []string
	id      int64 // -1: HasID must be false; else the id the frame must carry
}

func TestDecodeJSONInvalid(t *testing.T) {
	bad := protocol.CodeBadFrame
	s := func(x string) []byte { return []byte(x) }
	tests := []badCase{
		{"empty", s(""), bad, []string{"empty"}, -1},
		{"white space only", s(" \n\t "), bad, []string{"empty"}, -1},
		{"array", s(`[{"op":"ping"}]`), bad, []string{"not a JSON object", "array"}, -1},
		{"string", s(`"ping"`), bad, []string{"not a JSON object", "string"}, -1},
		{"number", s(`42`), bad, []string{"not a JSON object", "number"}, -1},
		{"negative number", s(`-1`), bad, []string{"number"}, -1},
		{"null", s(`null`), bad, []string{"null"}, -1},
		{"boolean", s(`true`), bad, []string{"boolean"}, -1},
		{"letter", s(`ping`), bad, []string{"'p'"}, -1},
		{"binary garbage", s("\x00\x01\xff\xfe"), bad, []string{"0x00"}, -1},
		{"high byte", s("\xff{}"), bad, []string{"0xff"}, -1},
		{"BOM", s("\xef\xbb\xbf{\"op\":\"ping\"}"), bad, []string{"0xef"}, -1},
		{"msgpack frame", s("\x81\xa2op\xa4ping"), bad, []string{"0x81"}, -1},
		{"unterminated object", s(`{`), bad, []string{"unterminated"}, -1},
		{"unterminated after field", s(`{"op":"ping"`), bad, []string{"unterminated"}, -1},
		{"unterminated after id", s(`{"op":"ping","id":12,`), bad, []string{"invalid JSON"}, 12},
		{"trailing comma", s(`{"op":"ping",}`), bad, []string{"key"}, -1},
		{"leading comma", s(`{,"op":"ping"}`), bad, []string{"key"}, -1},
		{"missing colon", s(`{"op" "ping"}`), bad, []string{"':'"}, -1},
		{"missing comma", s(`{"op":"ping" "id":1}`), bad, []string{"','"}, -1},
		{"unquoted key", s(`{op:"ping"}`), bad, []string{"key"}, -1},
		{"single quotes", s(`{'op':'ping'}`), bad, []string{"key"}, -1},
		{"missing value", s(`{"op":}`), bad, []string{"invalid JSON"}, -1},
		{"missing value at end", s(`{"op":`), bad, []string{"value"}, -1},
		{"trailing garbage", s(`{"op":"ping"} x`), bad, []string{"after the object"}, -1},
		{"two objects", s(`{"op":"ping"}{"op":"ping"}`), bad, []string{"after the object"}, -1},
		{"trailing garbage after id", s(`{"op":"ping","id":3}]`), bad, []string{"after the object"}, 3},
		{"trailing NUL", s("{\"op\":\"ping\"}\x00"), bad, []string{"after the object"}, -1},
		{"bad data after id", s(`{"id":7,"op":"pub","topic":"a","data":[1,2}`), bad, []string{"invalid JSON"}, 7},
		{"truncated data", s(`{"op":"pub","topic":"a","id":8,"data":{"a":[1,`), bad, []string{"invalid JSON"}, 8},
		{"truncated unknown", s(`{"op":"ping","id":1,"x":`), bad, []string{"value"}, 1},
		{"bad literal", s(`{"op":"pub","topic":"a","data":tru}`), bad, []string{"literal"}, -1},
		{"bad null", s(`{"op":"ping","id":nul}`), bad, []string{"literal"}, -1},
		{"NaN", s(`{"op":"pub","topic":"a","data":NaN}`), bad, []string{"unexpected character"}, -1},
		{"leading zero", s(`{"op":"pub","topic":"a","data":01}`), bad, []string{"invalid JSON"}, -1},
		{"plus number", s(`{"op":"pub","topic":"a","data":+1}`), bad, []string{"invalid JSON"}, -1},
		{"bare minus", s(`{"op":"pub","topic":"a","data":-}`), bad, []string{"number"}, -1},
		{"dot number", s(`{"op":"pub","topic":"a","data":1.}`), bad, []string{"'.'"}, -1},
		{"empty exponent", s(`{"op":"pub","topic":"a","data":1e+}`), bad, []string{"exponent"}, -1},
		{"hex number", s(`{"op":"pub","topic":"a","data":0x10}`), bad, []string{"invalid JSON"}, -1},
		{"control char in string", s("{\"op\":\"pub\",\"topic\":\"a\x01\",\"data\":1}"), bad, []string{"control character"}, -1},
		{"control char in escaped string", s("{\"op\":\"pub\",\"topic\":\"\\n\x1f\",\"data\":1}"), bad, []string{"control character"}, -1},
		{"control char in data", s("{\"op\":\"pub\",\"topic\":\"a\",\"data\":\"\t\"}"), bad, []string{"control character"}, -1},
		{"invalid escape", s(`{"op":"pub","topic":"a\q","data":1}`), bad, []string{"escape"}, -1},
		{"invalid escape in data", s(`{"op":"pub","topic":"a","data":"\x41"}`), bad, []string{"escape"}, -1},
		{"short \\u", s(`{"op":"pub","topic":"\u12","data":1}`), bad, []string{`\u`}, -1},
		{"bad \\u in data", s(`{"op":"pub","topic":"a","data":"\uZZZZ"}`), bad, []string{`\u`}, -1},
		{"bad low surrogate escape", s(`{"op":"pub","topic":"\ud800\u12x4","data":1}`), bad, []string{`\u`}, -1},
		{"unterminated string", s(`{"op":"pub","topic":"abc`), bad, []string{"unterminated"}, -1},
		{"unterminated escape", s(`{"op":"pub","topic":"abc\`), bad, []string{"unterminated"}, -1},
		{"non-string key in data", s(`{"op":"pub","topic":"a","data":{1:2}}`), bad, []string{"key"}, -1},

		// semantic errors: the frame is well-formed JSON
		{"unknown op", s(`{"op":"frob","id":3}`), protocol.CodeUnknownOp, []string{`"frob"`, "expected"}, 3},
		{"broker op", s(`{"op":"msg","topic":"a","data":1}`), protocol.CodeUnknownOp, []string{`"msg"`}, -1},
		{"empty op", s(`{"op":""}`), bad, []string{`"op"`}, -1},
		{"case of op", s(`{"op":"PING"}`), protocol.CodeUnknownOp, []string{`"PING"`}, -1},
		{"long op truncated", s(`{"op":"` + strings.Repeat("é", 40) + `"}`), protocol.CodeUnknownOp, []string{"..."}, -1},
		{"missing op", s(`{"id":3}`), bad, []string{`missing field "op"`}, 3},
		{"empty object", s(`{}`), bad, []string{`"op"`}, -1},
		{"null op", s(`{"op":null,"topic":"a"}`), bad, []string{`"op"`}, -1},
		{"sub missing topic", s(`{"op":"sub","id":4}`), bad, []string{`"topic"`, "sub"}, 4},
		{"sub empty topic", s(`{"op":"sub","topic":""}`), bad, []string{`"topic"`}, -1},
		{"sub null topic", s(`{"op":"sub","topic":null}`), bad, []string{`"topic"`}, -1},
		{"unsub missing topic", s(`{"op":"unsub"}`), bad, []string{`"topic"`, "unsub"}, -1},
		{"pub missing data", s(`{"op":"pub","topic":"a","id":5}`), bad, []string{`"data"`}, 5},
		{"pub missing topic", s(`{"op":"pub","data":1}`), bad, []string{`"topic"`}, -1},
		{"ack missing mid", s(`{"op":"ack"}`), bad, []string{`"mid"`, "ack"}, -1},
		{"nack missing mid", s(`{"op":"nack","id":2}`), bad, []string{`"mid"`, "nack"}, 2},
		{"ack null mid", s(`{"op":"ack","mid":null}`), bad, []string{`"mid"`}, -1},

		// wrongly typed fields
		{"op number", s(`{"op":1}`), bad, []string{`"op"`, "string"}, -1},
		{"op array", s(`{"op":["ping"]}`), bad, []string{`"op"`}, -1},
		{"id string", s(`{"op":"ping","id":"5"}`), bad, []string{`"id"`, "unsigned integer"}, -1},
		{"id negative", s(`{"op":"ping","id":-1}`), bad, []string{`"id"`}, -1},
		{"id negative zero", s(`{"op":"ping","id":-0}`), bad, []string{`"id"`}, -1},
		{"id float", s(`{"op":"ping","id":1.5}`), bad, []string{`"id"`}, -1},
		{"id integral float", s(`{"op":"ping","id":1.0}`), bad, []string{`"id"`}, -1},
		{"id exponent", s(`{"op":"ping","id":1e3}`), bad, []string{`"id"`}, -1},
		{"id overflow", s(`{"op":"ping","id":18446744073709551616}`), bad, []string{`"id"`}, -1},
		{"id bool", s(`{"op":"ping","id":true}`), bad, []string{`"id"`}, -1},
		{"id object", s(`{"op":"ping","id":{}}`), bad, []string{`"id"`}, -1},
		{"ack string", s(`{"op":"sub","topic":"a","ack":"true","id":6}`), bad, []string{`"ack"`, "boolean"}, 6},
		{"ack number", s(`{"op":"sub","topic":"a","ack":1}`), bad, []string{`"ack"`}, -1},
		{"retain string", s(`{"op":"pub","topic":"a","data":1,"retain":"yes"}`), bad, []string{`"retain"`}, -1},
		{"inflight negative", s(`{"op":"sub","topic":"a","inflight":-2}`), bad, []string{`"inflight"`}, -1},
		{"inflight bool", s(`{"op":"sub","topic":"a","inflight":true}`), bad, []string{`"inflight"`}, -1},
		{"topic array", s(`{"op":"pub","topic":["a"],"data":1}`), bad, []string{`"topic"`}, -1},
		{"topic number", s(`{"op":"sub","topic":7}`), bad, []string{`"topic"`}, -1},
		{"group number", s(`{"op":"sub","topic":"a","group":5}`), bad, []string{`"group"`}, -1},
		{"mid string", s(`{"op":"ack","mid":"1"}`), bad, []string{`"mid"`}, -1},
		{"mid float", s(`{"op":"nack","mid":2.5}`), bad, []string{`"mid"`}, -1},
		{"first type error wins", s(`{"op":"sub","topic":1,"ack":2}`), bad, []string{`"topic"`}, -1},
		{"type error before unknown op", s(`{"op":"frob","id":"x"}`), bad, []string{`"id"`}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f protocol.Frame
			err := protocol.DecodeJSON(tt.in, &f)
			checkErr(t, err, tt.code, tt.mention...)
			checkID(t, &f, tt.id)
			if err2 := protocol.Decode(protocol.JSON, tt.in, &f); err2 == nil || *err2 != *err {
				t.Errorf("Decode(JSON) = %v, DecodeJSON = %v", err2, err)
			}
		})
	}
}

func checkID(t *testing.T, f *protocol.Frame, id int64) {
	t.Helper()
	if id < 0 {
		if f.HasID {
			t.Errorf("HasID set (id %d)", f.ID)
		}
		return
	}
	if !f.HasID || f.ID != uint64(id) {
		t.Errorf("id = %d (HasID %v), want %d", f.ID, f.HasID, id)
	}
}

func TestDecodeMsgpackInvalid(t *testing.T) {
	bad := protocol.CodeBadFrame
	ping := mpMap(t, "op", "ping", "id", 5)
	enc := func(fn func(e *msgpack.Encoder) error) mpRaw {
		var buf bytes.Buffer
		if err := fn(msgpack.NewEncoder(&buf)); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	tests := []badCase{
		{"empty", nil, bad, []string{"empty"}, -1},
		{"array", mpEncode(t, []any{"op", "ping"}), bad, []string{"not a msgpack map", "array"}, -1},
		{"string", mpEncode(t, "ping"), bad, []string{"not a msgpack map", "string"}, -1},
		{"integer", mpEncode(t, 42), bad, []string{"integer"}, -1},
		{"negative integer", mpEncode(t, -3), bad, []string{"integer"}, -1},
		{"float", mpEncode(t, 1.5), bad, []string{"float"}, -1},
		{"nil", mpEncode(t, nil), bad, []string{"nil"}, -1},
		{"bool", mpEncode(t, true), bad, []string{"boolean"}, -1},
		{"bin", mpEncode(t, []byte("x")), bad, []string{"binary"}, -1},
		{"ext", []byte{0xd4, 1, 0}, bad, []string{"extension"}, -1},
		{"never used byte", []byte{0xc1}, bad, []string{"0xc1"}, -1},
		{"JSON frame", []byte(`{"op":"ping"}`), bad, []string{"not a msgpack map"}, -1},
		{"truncated map16 header", []byte{0xde, 0}, bad, []string{"truncated map header"}, -1},
		{"truncated map32 header", []byte{0xdf, 0, 0, 0}, bad, []string{"truncated map header"}, -1},
		{"map32 huge count", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa2, 'o', 'p'}, bad, []string{"truncated"}, -1},
		{"map32 count over 2^31", []byte{0xdf, 0x80, 0, 0, 0, 0xa2, 'o', 'p'}, bad, []string{"truncated"}, -1},
		{"str32 key over 2^31", []byte{0x81, 0xdb, 0x80, 0, 0, 0, 'o'}, bad, []string{"truncated"}, -1},
		{"str32 data over 2^31", mpMap(t, "op", "pub", "topic", "a", "data", mpRaw{0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}), bad, []string{"truncated"}, -1},
		{"array32 data over 2^31", mpMap(t, "op", "pub", "topic", "a", "data", mpRaw{0xdd, 0x80, 0, 0, 0}), bad, []string{"truncated"}, -1},
		{"ext32 data over 2^31", mpMap(t, "op", "pub", "topic", "a", "data", mpRaw{0xc9, 0xff, 0xff, 0xff, 0xff, 1}), bad, []string{"truncated"}, -1},
		{"map count over content", []byte{0x83, 0xa2, 'o', 'p', 0xa4, 'p', 'i', 'n', 'g'}, bad, []string{"truncated map"}, -1},
		{"missing value", []byte{0x81, 0xa2, 'o', 'p'}, bad, []string{"missing value"}, -1},
		{"truncated key", []byte{0x81, 0xa5, 'o', 'p'}, bad, []string{"truncated string"}, -1},
		{"truncated key header", []byte{0x81, 0xda, 0}, bad, []string{"truncated string header"}, -1},
		{"truncated op value", []byte{0x81, 0xa2, 'o', 'p', 0xa4, 'p', 'i'}, bad, []string{"truncated string"}, -1},
		{"truncated id", []byte{0x82, 0xa2, 'i', 'd', 0xcd, 1}, bad, []string{"truncated integer"}, -1},
		{"truncated signed id", []byte{0x82, 0xa2, 'i', 'd', 0xd3, 0, 0}, bad, []string{"truncated integer"}, -1},
		{"truncated data after id", mpMap(t, "id", 9, "op", "pub", "topic", "a", "data", mpRaw{0x92, 1}), bad, []string{"truncated"}, 9},
		{"truncated bin data", mpMap(t, "op", "pub", "id", 1, "topic", "a", "data", mpRaw{0xc4, 10, 1, 2}), bad, []string{"truncated"}, 1},
		{"truncated ext data", mpMap(t, "op", "pub", "id", 1, "topic", "a", "data", mpRaw{0xc7, 10, 1, 2}), bad, []string{"truncated"}, 1},
		{"array32 huge count in data", mpMap(t, "op", "pub", "topic", "a", "data", mpRaw{0xdd, 0xff, 0xff, 0xff, 0xff, 1}), bad, []string{"truncated"}, -1},
		{"invalid byte in data", mpMap(t, "op", "pub", "topic", "a", "id", 2, "data", mpRaw{0x91, 0xc1}), bad, []string{"0xc1"}, 2},
		{"invalid byte in unknown", mpMap(t, "op", "ping", "x", mpRaw{0xc1}), bad, []string{"0xc1"}, -1},
		{"trailing garbage", append(bytes.Clone(ping), 0xc0), bad, []string{"after the map"}, 5},
		{"two frames", append(bytes.Clone(ping), ping...), bad, []string{"after the map"}, 5},
		{"int key", mpMap(t, 1, "ping"), bad, []string{"map key", "integer", "expected a string"}, -1},
		{"int key after id", mpMap(t, "op", "ping", "id", 4, 1, 2), bad, []string{"map key"}, 4},
		{"nil key", mpMap(t, nil, "ping"), bad, []string{"map key", "nil"}, -1},
		{"bin key", mpMap(t, []byte("op"), "ping"), bad, []string{"map key", "binary"}, -1},
		{"array key", mpMap(t, mpRaw{0x90}, "ping"), bad, []string{"map key", "array"}, -1},

		{"unknown op", mpMap(t, "op", "frob", "id", 3), protocol.CodeUnknownOp, []string{`"frob"`}, 3},
		{"missing op", mpMap(t, "id", 3), bad, []string{`"op"`}, 3},
		{"empty map", []byte{0x80}, bad, []string{`"op"`}, -1},
		{"empty map16", []byte{0xde, 0, 0}, bad, []string{`"op"`}, -1},
		{"nil op", mpMap(t, "op", nil), bad, []string{`"op"`}, -1},
		{"sub missing topic", mpMap(t, "op", "sub", "id", 4), bad, []string{`"topic"`}, 4},
		{"unsub nil topic", mpMap(t, "op", "unsub", "topic", nil), bad, []string{`"topic"`}, -1},
		{"pub missing data", mpMap(t, "op", "pub", "topic", "a"), bad, []string{`"data"`}, -1},
		{"pub missing topic", mpMap(t, "op", "pub", "data", 1), bad, []string{`"topic"`}, -1},
		{"ack missing mid", mpMap(t, "op", "ack"), bad, []string{`"mid"`}, -1},
		{"nack nil mid", mpMap(t, "op", "nack", "mid", nil), bad, []string{`"mid"`}, -1},

		{"op int", mpMap(t, "op", 1), bad, []string{`"op"`, "string", "integer"}, -1},
		{"op bin", mpMap(t, "op", []byte("ping")), bad, []string{`"op"`, "binary"}, -1},
		{"id string", mpMap(t, "op", "ping", "id", "5"), bad, []string{`"id"`, "unsigned integer", "string"}, -1},
		{"id negative fixint", mpMap(t, "op", "ping", "id", -1), bad, []string{`"id"`, "negative"}, -1},
		{"id negative int8", mpMap(t, "op", "ping", "id", enc(func(e *msgpack.Encoder) error { return e.EncodeInt8(-100) })), bad, []string{`"id"`, "negative"}, -1},
		{"id negative int64", mpMap(t, "op", "ping", "id", enc(func(e *msgpack.Encoder) error { return e.EncodeInt64(math.MinInt64) })), bad, []string{`"id"`, "negative"}, -1},
		{"id float64", mpMap(t, "op", "ping", "id", 1.0), bad, []string{`"id"`, "float"}, -1},
		{"id float32", mpMap(t, "op", "ping", "id", float32(2)), bad, []string{`"id"`, "float"}, -1},
		{"id bool", mpMap(t, "op", "ping", "id", true), bad, []string{`"id"`, "boolean"}, -1},
		{"id array", mpMap(t, "op", "ping", "id", []any{1}), bad, []string{`"id"`, "array"}, -1},
		{"ack string", mpMap(t, "op", "sub", "topic", "a", "ack", "true", "id", 6), bad, []string{`"ack"`, "boolean", "string"}, 6},
		{"ack int", mpMap(t, "op", "sub", "topic", "a", "ack", 1), bad, []string{`"ack"`, "integer"}, -1},
		{"retain int", mpMap(t, "op", "pub", "topic", "a", "data", 1, "retain", 0), bad, []string{`"retain"`}, -1},
		{"inflight negative", mpMap(t, "op", "sub", "topic", "a", "inflight", -5), bad, []string{`"inflight"`, "negative"}, -1},
		{"topic bin", mpMap(t, "op", "sub", "topic", []byte("a")), bad, []string{`"topic"`, "binary"}, -1},
		{"topic map", mpMap(t, "op", "sub", "topic", map[string]any{}), bad, []string{`"topic"`, "map"}, -1},
		{"group int", mpMap(t, "op", "sub", "topic", "a", "group", 1), bad, []string{`"group"`}, -1},
		{"mid string", mpMap(t, "op", "ack", "mid", "1"), bad, []string{`"mid"`}, -1},
		{"mid ext", mpMap(t, "op", "ack", "mid", mpRaw{0xd4, 1, 1}), bad, []string{`"mid"`, "extension"}, -1},
		{"first type error wins", mpMap(t, "op", "sub", "topic", 1, "ack", 2), bad, []string{`"topic"`}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f protocol.Frame
			err := protocol.DecodeMsgpack(tt.in, &f)
			checkErr(t, err, tt.code, tt.mention...)
			checkID(t, &f, tt.id)
			if err2 := protocol.Decode(protocol.Msgpack, tt.in, &f); err2 == nil || *err2 != *err {
				t.Errorf("Decode(Msgpack) = %v, DecodeMsgpack = %v", err2, err)
			}
		})
	}
}

// Signed msgpack integers holding non-negative values are unsigned integers
// to the protocol.
func TestDecodeMsgpackSignedIDs(t *testing.T) {
	for _, fn := range []func(e *msgpack.Encoder) error{
		func(e *msgpack.Encoder) error { return e.EncodeInt8(7) },
		func(e *msgpack.Encoder) error { return e.EncodeInt16(7) },
		func(e *msgpack.Encoder) error { return e.EncodeInt32(7) },
		func(e *msgpack.Encoder) error { return e.EncodeInt64(7) },
		func(e *msgpack.Encoder) error { return e.EncodeUint8(7) },
		func(e *msgpack.Encoder) error { return e.EncodeUint16(7) },
		func(e *msgpack.Encoder) error { return e.EncodeUint32(7) },
		func(e *msgpack.Encoder) error { return e.EncodeUint64(7) },
	} {
		var buf bytes.Buffer
		_ = fn(msgpack.NewEncoder(&buf))
		b := mpMap(t, "op", "ack", "mid", mpRaw(buf.Bytes()), "id", mpRaw(buf.Bytes()))
		var f protocol.Frame
		if err := protocol.DecodeMsgpack(b, &f); err != nil {
			t.Fatalf("%x: %v", buf.Bytes(), err)
		}
		if f.ID != 7 || !f.HasID || f.Mid != 7 || !f.HasMid {
			t.Errorf("%x: %s", buf.Bytes(), dumpFrame(&f))
		}
	}
	var buf bytes.Buffer
	_ = msgpack.NewEncoder(&buf).EncodeInt64(math.MaxInt64)
	var f protocol.Frame
	if err := protocol.DecodeMsgpack(mpMap(t, "op", "ping", "id", mpRaw(buf.Bytes())), &f); err != nil || f.ID != math.MaxInt64 {
		t.Errorf("int64 max: %v %d", err, f.ID)
	}
}

// Every strict prefix of a valid frame is an error, never a panic, and
// never accepted.
func TestDecodeTruncated(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		for _, tc := range validFrames {
			b, _ := encodeCase(t, c, tc.fields)
			var f protocol.Frame
			for n := 0; n < len(b); n++ {
				if c == protocol.JSON && strings.TrimSpace(string(b[n:])) == "" {
					continue
				}
				err := protocol.Decode(c, b[:n:n], &f)
				if err == nil {
					t.Errorf("%s %s: prefix %q accepted", c, tc.name, b[:n])
					continue
				}
				if err.Code != protocol.CodeBadFrame {
					t.Errorf("%s %s: prefix %q: %v", c, tc.name, b[:n], err)
				}
			}
		}
	}
}

// ---- JSON strings ---------------------------------------------------------

// String escapes are decoded as encoding/json decodes them.
func TestDecodeJSONStrings(t *testing.T) {
	tests := []struct {
		lit  string // JSON string literal, quotes included
		want string
	}{
		{`"plain"`, "plain"},
		{`""`, ""},
		{`"a\/b"`, "a/b"},
		{`"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{`"\u0041\u00e9\u00E9"`, "Aéé"},
		{`"\u20ac"`, "€"},
		{`"\u0000"`, "\x00"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\uD83D\uDE00/x"`, "😀/x"},
		{`"a\uD83D"`, "a\uFFFD"},
		{`"\uD83Dx"`, "\uFFFDx"},
		{`"\uDE00"`, "\uFFFD"},
		{`"\uDE00\uD83D"`, "\uFFFD\uFFFD"},
		{`"\uD83D\uD83D\uDE00"`, "\uFFFD😀"},
		{`"\uD83D\u0041"`, "\uFFFDA"},
		{`"\uD83D\n"`, "\uFFFD\n"},
		{`"\uDBFF\uDFFF"`, "\U0010FFFF"},
		{`"\uFFFF"`, "\uFFFF"},
		{"\"日本/😀\"", "日本/😀"},
		{"\"a\xffb\"", "a\uFFFDb"},
		{"\"a\xffb\\n\"", "a\uFFFDb\n"},
		{"\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
		{"\"\xc3\"", "\uFFFD"},
		{"\"é\xc3\"", "é\uFFFD"},
		{"\"\x7f\"", "\x7f"},
	}
	for _, tt := range tests {
		var ref string
		if err := json.Unmarshal([]byte(tt.lit), &ref); err != nil {
			t.Fatalf("encoding/json rejects %q: %v", tt.lit, err)
		}
		if ref != tt.want {
			t.Fatalf("test case %q: encoding/json gives %q, table says %q", tt.lit, ref, tt.want)
		}
		in := `{"op":"sub","group":` + tt.lit + `,"topic":` + tt.lit + `,` + tt.lit + `:1}`
		var f protocol.Frame
		err := protocol.DecodeJSON([]byte(in), &f)
		if tt.want == "" {
			checkErr(t, err, protocol.CodeBadFrame, "topic")
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.lit, err)
			continue
		}
		if f.Topic != tt.want || f.Group != tt.want {
			t.Errorf("%s: topic %q group %q, want %q", tt.lit, f.Topic, f.Group, tt.want)
		}
		// the same string in data is passed on untouched
		in = `{"op":"pub","topic":"a","data":` + tt.lit + `}`
		if err := protocol.DecodeJSON([]byte(in), &f); err != nil || string(f.Data) != tt.lit {
			t.Errorf("%s: data %q, %v", tt.lit, f.Data, err)
		}
	}
}

// Strings are scanned 8 bytes at a time: a byte that ends the fast path
// (quote, escape, control character) or makes the string non-ASCII must be
// found at every position and every string length around the word size.
func TestDecodeJSONStringScanPositions(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, "é", "\xff", "\x01", "\x1f", "\x7f", "\x20", "!", "#", "]", "\x80"}
	for n := 0; n <= 24; n++ {
		for pos := 0; pos <= n; pos++ {
			for _, sp := range specials {
				lit := `"` + strings.Repeat("a", pos) + sp + strings.Repeat("b", n-pos) + `"`
				var ref string
				refErr := json.Unmarshal([]byte(lit), &ref)
				if refErr == nil && !utf8.Valid([]byte(lit)) {
					// encoding/json replaces invalid UTF-8 with U+FFFD, as we do
					ref = strings.ToValidUTF8(ref, "\uFFFD")
				}
				var f protocol.Frame
				err := protocol.DecodeJSON([]byte(`{"op":"sub","topic":`+lit+`}`), &f)
				if (err == nil) != (refErr == nil) {
					t.Fatalf("%q: error %v, encoding/json %v", lit, err, refErr)
				}
				if err == nil && f.Topic != ref {
					t.Fatalf("%q: topic %q, encoding/json %q", lit, f.Topic, ref)
				}
				// data is only validated and passed on as is
				in := []byte(`{"op":"pub","topic":"a","data":` + lit + `}`)
				err = protocol.DecodeJSON(in, &f)
				if (err == nil) != (refErr == nil) {
					t.Fatalf("data %q: error %v, encoding/json %v", lit, err, refErr)
				}
				if err == nil && string(f.Data) != lit {
					t.Fatalf("data %q: got %q", lit, f.Data)
				}
				if got := protocol.ValidJSON([]byte(lit)); got != json.Valid([]byte(lit)) {
					t.Fatalf("ValidJSON(%q) = %v", lit, got)
				}
			}
		}
	}
}

// Keys are compared after unescaping.
func TestDecodeJSONEscapedKeys(t *testing.T) {
	var f protocol.Frame
	in := `{"\u006fp":"pub","top\u0069c":"a","d\u0061ta":[],"\u0069d":4}`
	if err := protocol.DecodeJSON([]byte(in), &f); err != nil {
		t.Fatal(err)
	}
	if f.Op != "pub" || f.Topic != "a" || string(f.Data) != "[]" || f.ID != 4 {
		t.Errorf("frame %s", dumpFrame(&f))
	}
}

func TestAppendJSONString(t *testing.T) {
	var all []rune
	for r := rune(0); r < 0x300; r++ {
		all = append(all, r)
	}
	for _, s := range []string{
		"", "plain", `"quoted"`, `back\slash`, "\x00\x01\x1f\x7f", "\n\r\t\b\f",
		"</script>&", "é€😀日本", "\u2028\u2029", "\uFFFD", string(all),
	} {
		got := protocol.AppendJSONString([]byte("x"), s)
		if got[0] != 'x' {
			t.Fatal("dst prefix lost")
		}
		got = got[1:]
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("AppendJSONString(%q) = %s: %v", s, got, err)
			continue
		}
		if back != s {
			t.Errorf("AppendJSONString(%q) reads back as %q", s, back)
		}
	}
	// invalid UTF-8 becomes U+FFFD, as encoding/json does
	for _, s := range []string{"a\xffb", "\xc3", "\xed\xa0\x80", "é\xe2\x82", "\xf4\x90\x80\x80"} {
		got := protocol.AppendJSONString(nil, s)
		ref, _ := json.Marshal(s)
		var a, b string
		if err := json.Unmarshal(got, &a); err != nil || !utf8.ValidString(string(got)) {
			t.Errorf("AppendJSONString(%q) = %q: %v", s, got, err)
		}
		_ = json.Unmarshal(ref, &b)
		if a != b {
			t.Errorf("AppendJSONString(%q) reads back as %q, encoding/json gives %q", s, a, b)
		}
	}
}

// ---- encoding ---------------------------------------------------------------

var outFrames = []struct {
	name string
	f    protocol.Frame
	want map[string]any // JSON view; data is given as a JSON value
}{
	{"msg", protocol.Frame{Op: "msg", Topic: "a/b", Data: []byte(`{"x":[1,2.5,"s",null,true]}`)},
		map[string]any{"op": "msg", "topic": "a/b", "data": map[string]any{"x": []any{1.0, 2.5, "s", nil, true}}}},
	{"msg all fields", protocol.Frame{Op: "msg", Topic: "t", Data: []byte(`"v"`), Mid: 18446744073709551615, HasMid: true, Redelivered: true, Retained: true},
		map[string]any{"op": "msg", "topic": "t", "data": "v", "mid": json.Number("18446744073709551615"), "redelivered": true, "retained": true}},
	{"msg mid zero data null", protocol.Frame{Op: "msg", Topic: "t", Data: []byte(`null`), HasMid: true},
		map[string]any{"op": "msg", "topic": "t", "data": nil, "mid": 0.0}},
	{"ack", protocol.Frame{Op: "ack", ID: 7, HasID: true},
		map[string]any{"op": "ack", "id": 7.0}},
	{"ack id zero", protocol.Frame{Op: "ack", HasID: true},
		map[string]any{"op": "ack", "id": 0.0}},
	{"err with id", protocol.Frame{Op: "err", ID: 3, HasID: true, Code: "bad_topic", Reason: `topic "a//b" has an empty level`},
		map[string]any{"op": "err", "id": 3.0, "code": "bad_topic", "reason": `topic "a//b" has an empty level`}},
	{"err overflow", protocol.Frame{Op: "err", Code: "overflow", Reason: "dropped", Dropped: 12},
		map[string]any{"op": "err", "code": "overflow", "reason": "dropped", "dropped": 12.0}},
	{"pong", protocol.Frame{Op: "pong", ID: 1, HasID: true},
		map[string]any{"op": "pong", "id": 1.0}},
	{"pong bare", protocol.Frame{Op: "pong"},
		map[string]any{"op": "pong"}},
	{"sub", protocol.Frame{Op: "sub", Topic: "a/+", Group: "g", Ack: true, Inflight: 4, HasInflight: true, ID: 2, HasID: true},
		map[string]any{"op": "sub", "topic": "a/+", "group": "g", "ack": true, "inflight": 4.0, "id": 2.0}},
	{"pub", protocol.Frame{Op: "pub", Topic: "a", Data: []byte(`[]`), Retain: true},
		map[string]any{"op": "pub", "topic": "a", "data": []any{}, "retain": true}},
	{"escapes", protocol.Frame{Op: "err", Code: "x\"y", Reason: "line\nbreak\t\x00\\ and \xff", Topic: "é/😀", Group: "</>"},
		map[string]any{"op": "err", "code": "x\"y", "reason": "line\nbreak\t\x00\\ and \uFFFD", "topic": "é/😀", "group": "</>"}},
	{"every field", protocol.Frame{Op: "msg", ID: 1, HasID: true, Topic: "t", Group: "g", Data: []byte(`1`), Ack: true, Retain: true,
		Inflight: 2, HasInflight: true, Mid: 3, HasMid: true, Redelivered: true, Retained: true, Code: "c", Reason: "r", Dropped: 4},
		map[string]any{"op": "msg", "id": 1.0, "topic": "t", "group": "g", "data": 1.0, "ack": true, "retain": true, "inflight": 2.0,
			"mid": 3.0, "redelivered": true, "retained": true, "code": "c", "reason": "r", "dropped": 4.0}},
}

func normJSONNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if f, err := v.Float64(); err == nil && f < 1<<53 {
			return f
		}
		return v
	case map[string]any:
		for k, x := range v {
			v[k] = normJSONNumbers(x)
		}
	case []any:
		for i, x := range v {
			v[i] = normJSONNumbers(x)
		}
	}
	return v
}

func unmarshalJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json rejects %q: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data in %q", b)
	}
	return normJSONNumbers(v)
}

func TestAppendJSON(t *testing.T) {
	for _, tt := range outFrames {
		t.Run(tt.name, func(t *testing.T) {
			b := protocol.AppendJSON([]byte("prefix"), &tt.f)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("dst prefix lost")
			}
			b = b[len("prefix"):]
			if !json.Valid(b) || !protocol.ValidJSON(b) {
				t.Fatalf("invalid JSON %q", b)
			}
			if !bytes.HasPrefix(b, []byte(`{"op":`)) {
				t.Errorf("op is not first: %s", b)
			}
			got := unmarshalJSON(t, b)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("AppendJSON = %s\n got %#v\nwant %#v", b, got, tt.want)
			}
			if got := protocol.Append(protocol.JSON, nil, &tt.f); !bytes.Equal(got, b) {
				t.Errorf("Append(JSON) = %s", got)
			}
			// data is copied byte-exactly
			if tt.f.Data != nil && !bytes.Contains(b, append([]byte(`"data":`), tt.f.Data...)) {
				t.Errorf("data not copied exactly: %s", b)
			}
		})
	}
}

// mpToJSONView turns what the msgpack library decodes into the JSON view of
// outFrames (numbers as float64, or json.Number when too big).
func mpToJSONView(v any) any {
	switch v := v.(type) {
	case int8, int16, int32, int64, uint8, uint16, uint32:
		return reflect.ValueOf(v).Convert(reflect.TypeFor[float64]()).Float()
	case uint64:
		if v < 1<<53 {
			return float64(v)
		}
		return json.Number(strconv.FormatUint(v, 10))
	case float32:
		return float64(v)
	case map[string]any:
		for k, x := range v {
			v[k] = mpToJSONView(x)
		}
	case []any:
		for i, x := range v {
			v[i] = mpToJSONView(x)
		}
	}
	return v
}

func TestAppendMsgpack(t *testing.T) {
	for _, tt := range outFrames {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.f
			if f.Data != nil {
				// data must be msgpack for AppendMsgpack
				d, err := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, f.Data)
				if err != nil {
					t.Fatal(err)
				}
				f.Data = d
			}
			b := protocol.AppendMsgpack([]byte("prefix"), &f)
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatal("dst prefix lost")
			}
			b = b[len("prefix"):]
			if !protocol.ValidMsgpack(b) {
				t.Fatalf("invalid msgpack %x", b)
			}
			dec := msgpack.NewDecoder(bytes.NewReader(b))
			var got map[string]any
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("msgpack library rejects %x: %v", b, err)
			}
			if _, err := dec.DecodeInterface(); err == nil {
				t.Errorf("trailing data in %x", b)
			}
			want := unmarshalJSON(t, protocol.AppendJSON(nil, &tt.f)) // invalid UTF-8 replaced
			// msgpack passes strings as they are
			if tt.f.Reason != "" {
				want.(map[string]any)["reason"] = tt.f.Reason
			}
			if !reflect.DeepEqual(mpToJSONView(got), want) {
				t.Errorf("AppendMsgpack = %x\n got %#v\nwant %#v", b, got, want)
			}
			if got := protocol.Append(protocol.Msgpack, nil, &f); !bytes.Equal(got, b) {
				t.Errorf("Append(Msgpack) = %x", got)
			}
			if f.Data != nil && !bytes.Contains(b, append([]byte("\xa4data"), f.Data...)) {
				t.Errorf("data not copied exactly: %x", b)
			}
		})
	}
}

// Client frames survive Append then Decode in both codecs.
func TestRoundTripFrames(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		for _, tc := range validFrames {
			b, _ := encodeCase(t, c, tc.fields)
			var f protocol.Frame
			if err := protocol.Decode(c, b, &f); err != nil {
				t.Fatal(err)
			}
			out := protocol.Append(c, nil, &f)
			var g protocol.Frame
			if err := protocol.Decode(c, out, &g); err != nil {
				t.Fatalf("%s %s: Decode(Append) %q: %v", c, tc.name, out, err)
			}
			if !reflect.DeepEqual(f, g) {
				t.Errorf("%s %s: round trip\n got %s\nwant %s", c, tc.name, dumpFrame(&g), dumpFrame(&f))
			}
		}
	}
}

func TestAppendMsgpackNumbers(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 0x100000000, math.MaxUint64} {
		b := protocol.AppendMsgpackUint(nil, v)
		var got uint64
		if err := msgpack.Unmarshal(b, &got); err != nil || got != v {
			t.Errorf("AppendMsgpackUint(%d) = %x: %d %v", v, b, got, err)
		}
		var ref bytes.Buffer
		_ = msgpack.NewEncoder(&ref).EncodeUint(v) // the smallest form
		if !bytes.Equal(b, ref.Bytes()) {
			t.Errorf("AppendMsgpackUint(%d) = %x, library %x", v, b, ref.Bytes())
		}
	}
	for _, v := range []int64{0, 1, -1, -32, -33, 127, 128, -128, -129, 255, 256, -32768, -32769, 65535, 65536,
		math.MinInt32, math.MinInt32 - 1, math.MaxInt32, math.MaxInt64, math.MinInt64} {
		b := protocol.AppendMsgpackInt(nil, v)
		var got int64
		if err := msgpack.Unmarshal(b, &got); err != nil || got != v {
			t.Errorf("AppendMsgpackInt(%d) = %x: %d %v", v, b, got, err)
		}
		var buf bytes.Buffer
		_ = msgpack.NewEncoder(&buf).EncodeInt(v)
		if !bytes.Equal(b, buf.Bytes()) {
			t.Errorf("AppendMsgpackInt(%d) = %x, library %x", v, b, buf.Bytes())
		}
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("é", n/2) + strings.Repeat("a", n%2)
		b := protocol.AppendMsgpackString(nil, s)
		var got string
		if err := msgpack.Unmarshal(b, &got); err != nil || got != s {
			t.Errorf("AppendMsgpackString(len %d): %v", len(s), err)
		}
		ref, _ := msgpack.Marshal(s)
		if !bytes.Equal(b, ref) {
			t.Errorf("AppendMsgpackString(len %d) header %x, library %x", len(s), b[:min(5, len(b))], ref[:min(5, len(ref))])
		}
	}
}

func TestSessionFrameRoundTrip(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		in := protocol.Frame{Op: protocol.OpSession, Session: "dev-17", Resumed: true}
		var out protocol.Frame
		if err := protocol.DecodeAny(c, protocol.Append(c, nil, &in), &out); err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if out.Op != in.Op || out.Session != in.Session || out.Resumed != in.Resumed {
			t.Fatalf("%v: got %+v", c, out)
		}
	}
}

// Decoding into the same Frame reuses the previous topic's string when the
// topic repeats (no allocation per frame), and never keeps a stale one.
func TestDecodeReusesTopic(t *testing.T) {
	for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		enc := func(topic string) []byte {
			return protocol.Append(c, nil, &protocol.Frame{Op: protocol.OpMsg, Topic: topic, Data: jsonOr(c, `1`, []byte{1})})
		}
		var f protocol.Frame
		for _, topic := range []string{"a/b", "a/b", "a/c", "", "a/c", "a/b"} {
			if err := protocol.DecodeAny(c, enc(topic), &f); err != nil {
				t.Fatalf("%v %q: %v", c, topic, err)
			}
			if f.Topic != topic {
				t.Fatalf("%v: topic %q, want %q", c, f.Topic, topic)
			}
		}
		b := enc("telemetry/dev-1/temp")
		allocs := testing.AllocsPerRun(100, func() {
			if err := protocol.DecodeAny(c, b, &f); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: %v allocations per decode of a repeated topic, want 0", c, allocs)
		}
		pub := protocol.Append(c, nil, &protocol.Frame{Op: protocol.OpPub, Topic: "x/y", Data: jsonOr(c, `"v"`, []byte{0xa1, 'v'})})
		allocs = testing.AllocsPerRun(100, func() {
			if err := protocol.Decode(c, pub, &f); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Fatalf("%v: %v allocations per decode of a repeated pub, want 0", c, allocs)
		}
	}
}

func jsonOr(c protocol.Codec, j string, mp []byte) []byte {
	if c == protocol.JSON {
		return []byte(j)
	}
	return mp
}
