package protocol_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Seeds shared by the fuzzers.
var jsonSeeds = []string{
	`{"op":"sub","topic":"telemetry/+/temp","id":1}`,
	`{"op":"sub","topic":"jobs/#","id":2,"group":"workers","ack":true,"inflight":8}`,
	`{"op":"unsub","topic":"jobs/#","group":"workers","id":3}`,
	`{"op":"pub","topic":"telemetry/d17/temp","data":{"c":21.5,"ok":true,"tags":["a",null]},"id":4}`,
	`{"op":"pub","topic":"status","data":null,"retain":true}`,
	`{"op":"pub","topic":"s","data":"\u00e9\ud83d\ude00\n","id":18446744073709551615}`,
	`{"op":"pub","topic":"n","data":[0,-0,-1,1.5e300,18446744073709551616,-9223372036854775809,1E-7]}`,
	`{"op":"ack","mid":7}`,
	`{"op":"nack","mid":0}`,
	`{"op":"ping","id":0}`,
	`{"op":"ping"}`,
	` { "op" : "ping" , "x" : { "y" : [ 1 , { } ] } } `,
	`{"op":"ping","id":null,"group":null}`,
	`{"op":"frob","id":3}`,
	`{"op":"ping","id":"1"}`,
	`{"op":"ping","id":-1}`,
	`{"op":"ping","id":1.5}`,
	`{"op":"sub","topic":"a","ack":"yes","id":5}`,
	`{"op":"pub","topic":"a\ud800","data":1}`,
	`{"op":"pub","topic":"a","data":[1,2}`,
	`{"op":"ping"} x`,
	`[{"op":"ping"}]`,
	`"ping"`,
	`{"op":"pub","topic":"a","data":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
	`{"op":"pub","topic":"a","data":` + strings.Repeat("[", 101) + strings.Repeat("]", 101) + `}`,
	"{\"op\":\"pub\",\"topic\":\"a\xff\",\"data\":\"\xc3\"}",
	``,
	`{`,
	`{"op":"pub","topic":"\u0000","data":{"":""}}`,
}

func msgpackSeeds(t testing.TB) [][]byte {
	return [][]byte{
		mpMap(t, "op", "sub", "topic", "telemetry/+/temp", "id", 1),
		mpMap(t, "op", "sub", "topic", "jobs/#", "id", 2, "group", "workers", "ack", true, "inflight", 8),
		mpMap(t, "op", "unsub", "topic", "jobs/#", "id", 3),
		mpMap(t, "op", "pub", "topic", "t", "data", map[string]any{"c": 21.5, "b": []byte{1, 2, 3}, "n": nil}, "id", 4, "retain", true),
		mpMap(t, "op", "pub", "topic", "t", "data", mpRaw(ext(-1, []byte{0, 0, 0, 1}))),
		mpMap(t, "op", "pub", "topic", "t", "data", mpRaw(ext(7, []byte("abc")))),
		mpMap(t, "op", "pub", "topic", "t", "data", mpMap(t, 1, "x", true, []any{math.NaN(), math.Inf(-1), float32(0.1)})),
		mpMap(t, "op", "ack", "mid", uint64(math.MaxUint64)),
		mpMap(t, "op", "nack", "mid", 0),
		mpMap(t, "op", "ping", "id", 9),
		mpMap(t, "op", "ping"),
		mpMap(t, "op", "ping", "id", nil, "x", []any{1, map[string]any{}}),
		mpMap(t, "op", "frob", "id", 3),
		mpMap(t, "op", "ping", "id", -1),
		mpMap(t, "op", "ping", "id", "1"),
		mpMap(t, 1, "ping"),
		append(mpMap(t, "op", "ping"), 0xc0),
		{0xde, 0},
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xc1},
		mpMap(t, "op", "pub", "topic", "a", "data", mpRaw(append(bytes.Repeat([]byte{0x91}, 99), 0x90))),
		mpMap(t, "op", "pub", "topic", "a", "data", mpRaw(append(bytes.Repeat([]byte{0x91}, 100), 0x90))),
		mpMap(t, "op", "pub", "topic", "a\xff", "data", "\xc3"),
		nil,
	}
}

// jsonDepth is the deepest nesting of arrays and objects in b, scanning as
// a JSON parser would until its first error.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				max = depth
			}
		case ']', '}':
			depth--
		}
	}
	return max
}

var errTooDeep = errors.New("too deep")

// mpWalk walks one msgpack value with the msgpack library, failing with
// errTooDeep on nesting deeper than MaxDepth.
func mpWalk(d *msgpack.Decoder, depth int) error {
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	var n int
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		if n, err = d.DecodeMapLen(); err != nil {
			return err
		}
		n *= 2
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		if n, err = d.DecodeArrayLen(); err != nil {
			return err
		}
	default:
		return d.Skip()
	}
	if n < 0 {
		// the library reads a length of 2^31 or more as negative on
		// 32-bit platforms
		return errors.New("length does not fit in an int")
	}
	if depth >= protocol.MaxDepth {
		return errTooDeep
	}
	for range n {
		if err := mpWalk(d, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// nonStringKeys stands for a map with keys other than strings.
type nonStringKeys struct{}

// libDecode decodes one msgpack value with the library, keeping maps whose
// keys are not all strings apart (the library would turn their keys into
// strings its own way).
func libDecode(b []byte) (any, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	d.SetMapDecoder(func(d *msgpack.Decoder) (any, error) {
		n, err := d.DecodeMapLen()
		if err != nil {
			return nil, err
		}
		m := make(map[string]any, min(n, 64))
		strKeys := true
		for range n {
			k, err := d.DecodeInterface()
			if err != nil {
				return nil, err
			}
			v, err := d.DecodeInterface()
			if err != nil {
				return nil, err
			}
			if ks, ok := k.(string); ok {
				m[ks] = v
			} else {
				strKeys = false
			}
		}
		if !strKeys {
			return nonStringKeys{}, nil
		}
		return m, nil
	})
	return d.DecodeInterface()
}

// libSkip reports whether the msgpack library reads b as exactly one value.
func libSkip(b []byte) bool {
	r := bytes.NewReader(b)
	return msgpack.NewDecoder(r).Skip() == nil && r.Len() == 0
}

// refValidMsgpack is ValidMsgpack by way of the msgpack library.
func refValidMsgpack(b []byte) bool {
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	return mpWalk(d, 0) == nil && r.Len() == 0
}

func addSeeds(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	for _, b := range msgpackSeeds(f) {
		f.Add(b)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b)
		depth := jsonDepth(b)
		if got, want := protocol.ValidJSON(b), valid && depth <= protocol.MaxDepth; got != want {
			t.Fatalf("ValidJSON(%q) = %v, json.Valid %v, depth %d", b, got, valid, depth)
		}
		in := bytes.Clone(b)
		var fr protocol.Frame
		err := protocol.DecodeJSON(b, &fr)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeJSON modified its input")
		}
		if err != nil {
			if err.Code != protocol.CodeBadFrame && err.Code != protocol.CodeUnknownOp {
				t.Fatalf("DecodeJSON(%q): code %q", b, err.Code)
			}
			if err.Reason == "" || !utf8.ValidString(err.Reason) {
				t.Fatalf("DecodeJSON(%q): reason %q", b, err.Reason)
			}
			if err.Code == protocol.CodeUnknownOp && !valid {
				t.Fatalf("DecodeJSON(%q): unknown_op for invalid JSON", b)
			}
			return
		}
		if !valid {
			t.Fatalf("DecodeJSON accepts %q, which encoding/json refuses", b)
		}
		checkClientFrame(t, &fr)
		for _, s := range []string{fr.Op, fr.Topic, fr.Group, fr.Code, fr.Reason} {
			if !utf8.ValidString(s) {
				t.Fatalf("DecodeJSON(%q): string %q is not UTF-8", b, s)
			}
		}
		if fr.Data != nil {
			if !within(fr.Data, b) {
				t.Fatal("Data is not a sub-slice of the input")
			}
			if !protocol.ValidJSON(fr.Data) {
				t.Fatalf("DecodeJSON(%q): data %q is not ValidJSON", b, fr.Data)
			}
			mp, cerr := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, fr.Data)
			if cerr != nil || !protocol.ValidMsgpack(mp) {
				t.Fatalf("data %q: Convert: %x %v", fr.Data, mp, cerr)
			}
		}
		// the frame encodes back to JSON that decodes to the same frame
		out := protocol.AppendJSON(nil, &fr)
		var g protocol.Frame
		if err := protocol.DecodeJSON(out, &g); err != nil {
			t.Fatalf("DecodeJSON(AppendJSON(%q)) = %q: %v", b, out, err)
		}
		if !reflect.DeepEqual(fr, g) {
			t.Fatalf("round trip of %q via %q:\n got %s\nwant %s", b, out, dumpFrame(&g), dumpFrame(&fr))
		}
	})
}

func checkClientFrame(t *testing.T, f *protocol.Frame) {
	t.Helper()
	if !protocol.IsClientOp(f.Op) {
		t.Fatalf("accepted op %q", f.Op)
	}
	switch f.Op {
	case protocol.OpSub, protocol.OpUnsub:
		if f.Topic == "" {
			t.Fatal("sub/unsub without topic accepted")
		}
	case protocol.OpPub:
		if f.Topic == "" || f.Data == nil {
			t.Fatal("pub without topic or data accepted")
		}
	case protocol.OpAck, protocol.OpNack:
		if !f.HasMid {
			t.Fatal("ack/nack without mid accepted")
		}
	}
}

func FuzzDecodeMsgpack(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := protocol.ValidMsgpack(b), refValidMsgpack(b); got != want {
			t.Fatalf("ValidMsgpack(%x) = %v, library says %v", b, got, want)
		}
		in := bytes.Clone(b)
		var fr protocol.Frame
		err := protocol.DecodeMsgpack(b, &fr)
		if !bytes.Equal(in, b) {
			t.Fatal("DecodeMsgpack modified its input")
		}
		if err != nil {
			if err.Code != protocol.CodeBadFrame && err.Code != protocol.CodeUnknownOp {
				t.Fatalf("DecodeMsgpack(%x): code %q", b, err.Code)
			}
			if err.Reason == "" || !utf8.ValidString(err.Reason) {
				t.Fatalf("DecodeMsgpack(%x): reason %q", b, err.Reason)
			}
			return
		}
		// (the frame may be one level deeper than MaxDepth)
		if !libSkip(b) {
			t.Fatalf("DecodeMsgpack accepts %x, which the msgpack library refuses", b)
		}
		checkClientFrame(t, &fr)
		if fr.Data != nil {
			if !within(fr.Data, b) {
				t.Fatal("Data is not a sub-slice of the input")
			}
			if !protocol.ValidMsgpack(fr.Data) {
				t.Fatalf("DecodeMsgpack(%x): data %x is not ValidMsgpack", b, fr.Data)
			}
			j, cerr := protocol.Convert(nil, protocol.Msgpack, protocol.JSON, fr.Data)
			if cerr != nil || !json.Valid(j) {
				t.Fatalf("data %x: Convert: %q %v", fr.Data, j, cerr)
			}
		}
		out := protocol.AppendMsgpack(nil, &fr)
		var g protocol.Frame
		if err := protocol.DecodeMsgpack(out, &g); err != nil {
			t.Fatalf("DecodeMsgpack(AppendMsgpack(%x)) = %x: %v", b, out, err)
		}
		if !reflect.DeepEqual(fr, g) {
			t.Fatalf("round trip of %x via %x:\n got %s\nwant %s", b, out, dumpFrame(&g), dumpFrame(&fr))
		}
	})
}

func FuzzTopic(f *testing.F) {
	for _, p := range [][2]string{
		{"a/b/c", "a/+/c"}, {"a", "a/#"}, {"a/b", "#"}, {"$SYS/x", "#"}, {"$SYS/x", "$SYS/#"}, {"$SYS/x", "+/x"},
		{"données/😀", "données/+"}, {"a//b", "a/+/b"}, {"/a", "+/a"}, {"a/", "a/+"}, {"a+b", "a/#/b"},
		{"a\x00", "a\xff"}, {"", ""}, {"a/b/c/d/e", "+/+/+/+/#"}, {"#", "+"}, {strings.Repeat("x", 300), "x"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, topic, filter string) {
		terr := protocol.ValidateTopic(topic, 0)
		ferr := protocol.ValidateFilter(filter, 0)
		for _, e := range []*protocol.Error{terr, ferr, protocol.ValidateFilter(topic, 0), protocol.ValidateTopic(filter, 0)} {
			if e != nil && (e.Code != protocol.CodeBadTopic || e.Reason == "" || !utf8.ValidString(e.Reason)) {
				t.Fatalf("error %#v", e)
			}
		}
		if terr == nil {
			if err := protocol.ValidateFilter(topic, 0); err != nil {
				t.Fatalf("topic %q is valid but not as a filter: %v", topic, err)
			}
			if !utf8.ValidString(topic) || topic == "" || len(topic) > protocol.DefaultMaxTopicBytes ||
				strings.ContainsAny(topic, "+#\x00") || strings.Contains("/"+topic+"/", "//") {
				t.Fatalf("ValidateTopic accepts %q", topic)
			}
			if !protocol.Match(topic, topic) {
				t.Fatalf("topic %q does not match itself", topic)
			}
			sys := protocol.IsSystem(topic)
			if protocol.Match("#", topic) == sys {
				t.Fatalf("Match(#, %q) = %v", topic, !sys)
			}
			levels := strings.Split(topic, "/")
			plus := strings.Repeat("+/", len(levels))
			if protocol.Match(plus[:len(plus)-1], topic) == sys {
				t.Fatalf("Match(%q, %q) = %v", plus[:len(plus)-1], topic, !sys)
			}
			if protocol.Match(plus+"+", topic) {
				t.Fatalf("Match(%q, %q) = true", plus+"+", topic)
			}
			if !protocol.Match(topic+"/#", topic) {
				t.Fatalf("Match(%q/#, %q) = false", topic, topic)
			}
			// with a custom limit
			if err := protocol.ValidateTopic(topic, len(topic)); err != nil {
				t.Fatalf("ValidateTopic(%q, %d): %v", topic, len(topic), err)
			}
			if err := protocol.ValidateTopic(topic, len(topic)-1); len(topic) > 1 && err == nil {
				t.Fatalf("ValidateTopic(%q, %d) accepted", topic, len(topic)-1)
			}
		}
		if ferr == nil {
			if !utf8.ValidString(filter) || filter == "" || strings.Contains("/"+filter+"/", "//") ||
				strings.Contains(filter, "\x00") {
				t.Fatalf("ValidateFilter accepts %q", filter)
			}
			for i, l := range strings.Split(filter, "/") {
				if strings.ContainsAny(l, "+#") && len(l) > 1 || l == "#" && i != strings.Count(filter, "/") {
					t.Fatalf("ValidateFilter accepts %q", filter)
				}
			}
		}
		if terr == nil && ferr == nil {
			if got, want := protocol.Match(filter, topic), refMatch(filter, topic); got != want {
				t.Fatalf("Match(%q, %q) = %v, want %v", filter, topic, got, want)
			}
		}
		// Match never panics, even on invalid input
		protocol.Match(filter, topic)
		protocol.Match(topic, filter)
	})
}

// jsonValueOfMsgpack is the JSON value (as decodeJSONValue gives it) that a
// value decoded by the msgpack library should convert to; ok is false when
// the value has a form this function does not model (non-string map keys).
func jsonValueOfMsgpack(v any) (any, bool) {
	switch v := v.(type) {
	case nil, bool:
		return v, true
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		i, _ := mpInt(v)
		return json.Number(i.String()), true
	case float32:
		return jsonFloat(float64(v), 32), true
	case float64:
		return jsonFloat(v, 64), true
	case string:
		return validUTF8(v), true
	case []byte:
		return base64.StdEncoding.EncodeToString(v), true
	case time.Time:
		// the library also reads timestamps with nanoseconds over 1e9,
		// which Convert leaves in the generic extension form
		return nil, false
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			var ok bool
			if out[i], ok = jsonValueOfMsgpack(x); !ok {
				return nil, false
			}
		}
		return out, true
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			k = validUTF8(k)
			if _, dup := out[k]; dup {
				return nil, false // which one JSON keeps depends on the order
			}
			var ok bool
			if out[k], ok = jsonValueOfMsgpack(x); !ok {
				return nil, false
			}
		}
		return out, true
	}
	return nil, false
}

// validUTF8 replaces each byte of invalid UTF-8 with U+FFFD.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

func jsonFloat(f float64, bits int) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits))
}

func FuzzConvert(f *testing.F) {
	addSeeds(f)
	for _, s := range jsonValues {
		f.Add([]byte(s))
	}
	for _, tc := range msgpackCases(f) {
		if len(tc.in) < 1000 {
			f.Add(tc.in)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		defer func() {
			if !bytes.Equal(in, b) {
				t.Fatal("Convert modified its input")
			}
		}()
		// the same codec: a checked copy
		for _, c := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
			valid := protocol.ValidJSON(b)
			if c == protocol.Msgpack {
				valid = protocol.ValidMsgpack(b)
			}
			out, err := protocol.Convert([]byte("pre"), c, c, b)
			if valid != (err == nil) || valid && string(out) != "pre"+string(b) || !valid && string(out) != "pre" {
				t.Fatalf("Convert(%s, %s, %q) = %q, %v; valid %v", c, c, b, out, err, valid)
			}
		}

		// JSON
		mp, err := protocol.Convert([]byte("pre"), protocol.JSON, protocol.Msgpack, b)
		if protocol.ValidJSON(b) {
			if err != nil {
				t.Fatalf("Convert(JSON %q): %v", b, err)
			}
			mp = mp[3:]
			if !protocol.ValidMsgpack(mp) || !refValidMsgpack(mp) {
				t.Fatalf("Convert(JSON %q) = invalid msgpack %x", b, mp)
			}
			back, err := protocol.Convert(nil, protocol.Msgpack, protocol.JSON, mp)
			if err != nil || !json.Valid(back) || !protocol.ValidJSON(back) {
				t.Fatalf("JSON %q → %x → %q: %v", b, mp, back, err)
			}
			checkJSONRoundTrip(t, b, back)
			mp2 := mustConvert(t, protocol.JSON, protocol.Msgpack, back)
			if back2 := mustConvert(t, protocol.Msgpack, protocol.JSON, mp2); !bytes.Equal(back, back2) {
				t.Fatalf("JSON %q: round trips give %q then %q", b, back, back2)
			}
		} else if err == nil || string(mp) != "pre" {
			t.Fatalf("Convert(invalid JSON %q) = %x, %v", b, mp, err)
		}

		// msgpack
		j, err := protocol.Convert([]byte("pre"), protocol.Msgpack, protocol.JSON, b)
		if protocol.ValidMsgpack(b) {
			if err != nil {
				t.Fatalf("Convert(msgpack %x): %v", b, err)
			}
			j = j[3:]
			if !json.Valid(j) || !utf8.Valid(j) {
				t.Fatalf("Convert(msgpack %x) = invalid JSON %q", b, j)
			}
			// an extension at the deepest level becomes one more level of
			// JSON; anything else converts back
			if protocol.ValidJSON(j) {
				mp, err := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, j)
				if err != nil || !protocol.ValidMsgpack(mp) {
					t.Fatalf("msgpack %x → %q → %x: %v", b, j, mp, err)
				}
			} else if jsonDepth(j) <= protocol.MaxDepth {
				t.Fatalf("Convert(msgpack %x) = %q, not ValidJSON", b, j)
			}
			if v, err := libDecode(b); err == nil {
				if want, ok := jsonValueOfMsgpack(v); ok {
					if d := sameJSON("", want, decodeJSONValue(t, j)); d != "" {
						t.Fatalf("Convert(msgpack %x) = %q: %s", b, j, d)
					}
				}
			}
		} else if err == nil || string(j) != "pre" {
			t.Fatalf("Convert(invalid msgpack %x) = %q, %v", b, j, err)
		}
	})
}

// checkJSONRoundTrip compares a JSON document with its conversion to msgpack
// and back: integers exactly, other numbers as float64 (overflow becoming
// "+Inf"/"-Inf" strings), everything else exactly.
func checkJSONRoundTrip(t *testing.T, in, back []byte) {
	t.Helper()
	a, b := decodeJSONValue(t, in), decodeJSONValue(t, back)
	if d := sameRoundTrip("", a, b); d != "" {
		t.Fatalf("JSON %q came back as %q: %s", in, back, d)
	}
}

func sameRoundTrip(path string, a, b any) string {
	if n, ok := a.(json.Number); ok {
		s := string(n)
		if _, err := strconv.ParseInt(s, 10, 64); err == nil && s != "-0" {
			if b != a {
				return path + ": integer " + s + " became " + toString(b)
			}
			return ""
		}
		if _, err := strconv.ParseUint(s, 10, 64); err == nil {
			if b != a {
				return path + ": integer " + s + " became " + toString(b)
			}
			return ""
		}
		f, _ := strconv.ParseFloat(s, 64)
		if want := jsonFloat(f, 64); !(math.IsInf(f, 0) && b == want) {
			bn, ok := b.(json.Number)
			g, _ := strconv.ParseFloat(string(bn), 64)
			if !ok || g != f || math.Signbit(g) != math.Signbit(f) {
				return path + ": number " + s + " became " + toString(b)
			}
		}
		return ""
	}
	switch a := a.(type) {
	case []any:
		bs, ok := b.([]any)
		if !ok || len(a) != len(bs) {
			return path + ": array changed"
		}
		for i := range a {
			if d := sameRoundTrip(path+"["+strconv.Itoa(i)+"]", a[i], bs[i]); d != "" {
				return d
			}
		}
		return ""
	case map[string]any:
		bm, ok := b.(map[string]any)
		if !ok || len(a) != len(bm) {
			return path + ": object changed"
		}
		for k, v := range a {
			if d := sameRoundTrip(path+"."+k, v, bm[k]); d != "" {
				return d
			}
		}
		return ""
	}
	if a != b {
		return path + ": " + toString(a) + " became " + toString(b)
	}
	return ""
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
