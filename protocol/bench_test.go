package protocol_test

import (
	"strings"
	"testing"

	"github.com/ferry-io/ferry/protocol"
)

// benchJSONData is a 128-byte JSON payload of a realistic shape.
var benchJSONData = func() []byte {
	s := `{"device":"device-17","ts":1700000000123,"temp":21.5,"hum":40.25,"ok":true,"tags":["roof","north"],"seq":9001,"fw":"1.4.2-rc.1"}`
	if len(s) != 128 {
		panic(len(s))
	}
	return []byte(s)
}()

// benchMsgpackData is a 128-byte msgpack payload of the same shape.
var benchMsgpackData = func() []byte {
	for pad := 0; pad < 64; pad++ {
		s := `{"device":"device-17","ts":1700000000123,"temp":21.5,"hum":40.25,"ok":true,"tags":["roof","north"],"seq":9001,"fw":"1.4.2-rc.1` +
			strings.Repeat("x", pad) + `"}`
		d, err := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, []byte(s))
		if err != nil {
			panic(err)
		}
		if len(d) == 128 {
			return d
		}
	}
	panic("no padding gives 128 bytes")
}()

const benchTopic = "telemetry/site-1/sensors/device-17/temp"

func BenchmarkDecodeJSONPub(b *testing.B) {
	frame := []byte(`{"op":"pub","topic":"` + benchTopic + `","id":42,"data":` + string(benchJSONData) + `}`)
	var f protocol.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := protocol.DecodeJSON(frame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMsgpackPub(b *testing.B) {
	frame := protocol.AppendMsgpack(nil, &protocol.Frame{Op: "pub", Topic: benchTopic, ID: 42, HasID: true, Data: benchMsgpackData})
	var f protocol.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := protocol.DecodeMsgpack(frame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONMsg decodes a msg frame as a subscriber receives it
// (what the broker encodes: a 128-character JSON string as data).
func BenchmarkDecodeJSONMsg(b *testing.B) {
	data := []byte(`"` + strings.Repeat("7", 19) + strings.Repeat("x", 109) + `"`)
	frame := protocol.AppendJSON(nil, &protocol.Frame{Op: "msg", Topic: "bench/fanout", Data: data})
	var f protocol.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := protocol.DecodeAny(protocol.JSON, frame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeMsgpackMsg is BenchmarkDecodeJSONMsg in msgpack (128-byte
// bin data).
func BenchmarkDecodeMsgpackMsg(b *testing.B) {
	data := append([]byte{0xc4, 128}, make([]byte, 128)...)
	frame := protocol.AppendMsgpack(nil, &protocol.Frame{Op: "msg", Topic: "bench/fanout", Data: data})
	var f protocol.Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := protocol.DecodeAny(protocol.Msgpack, frame, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSONMsg(b *testing.B) {
	f := protocol.Frame{Op: "msg", Topic: benchTopic, Data: benchJSONData, Mid: 123456, HasMid: true, Redelivered: true}
	buf := protocol.AppendJSON(nil, &f)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = protocol.AppendJSON(buf[:0], &f)
	}
}

func BenchmarkAppendMsgpackMsg(b *testing.B) {
	f := protocol.Frame{Op: "msg", Topic: benchTopic, Data: benchMsgpackData, Mid: 123456, HasMid: true, Redelivered: true}
	buf := protocol.AppendMsgpack(nil, &f)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = protocol.AppendMsgpack(buf[:0], &f)
	}
}

func BenchmarkConvertJSONToMsgpack(b *testing.B) {
	buf, _ := protocol.Convert(nil, protocol.JSON, protocol.Msgpack, benchJSONData)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJSONData)))
	for b.Loop() {
		var err error
		if buf, err = protocol.Convert(buf[:0], protocol.JSON, protocol.Msgpack, benchJSONData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConvertMsgpackToJSON(b *testing.B) {
	buf, _ := protocol.Convert(nil, protocol.Msgpack, protocol.JSON, benchMsgpackData)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMsgpackData)))
	for b.Loop() {
		var err error
		if buf, err = protocol.Convert(buf[:0], protocol.Msgpack, protocol.JSON, benchMsgpackData); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch5Levels(b *testing.B) {
	for _, bc := range []struct {
		name, filter string
		want         bool
	}{
		{"exact", benchTopic, true},
		{"plus", "telemetry/+/sensors/+/temp", true},
		{"hash", "telemetry/site-1/#", true},
		{"miss-last", "telemetry/site-1/sensors/device-17/hum", false},
		{"hash-only", "#", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if protocol.Match(bc.filter, benchTopic) != bc.want {
					b.Fatal("wrong result")
				}
			}
		})
	}
}
