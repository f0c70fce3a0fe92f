package protocol_test

import (
	"testing"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

func TestUnmarshal(t *testing.T) {
	type reading struct {
		Celsius float64 `json:"c" msgpack:"c"`
		Raw     []byte  `json:"raw" msgpack:"raw"`
	}
	mp, err := msgpack.Marshal(map[string]any{"c": 21.5, "raw": []byte{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codec protocol.Codec
		data  []byte
	}{
		{protocol.JSON, []byte(`{"c":21.5,"raw":"AQI="}`)},
		{protocol.Msgpack, mp},
	} {
		var r reading
		if err := protocol.Unmarshal(tc.codec, tc.data, &r); err != nil {
			t.Fatalf("%v: %v", tc.codec, err)
		}
		if r.Celsius != 21.5 || string(r.Raw) != "\x01\x02" {
			t.Fatalf("%v: decoded %+v", tc.codec, r)
		}
	}
	// each codec's data is decoded by its own library only
	var r reading
	if err := protocol.Unmarshal(protocol.JSON, mp, &r); err == nil {
		t.Fatal("msgpack data decoded as JSON")
	}
	if err := protocol.Unmarshal(protocol.Msgpack, []byte(`{"c":1}`), &r); err == nil {
		t.Fatal("JSON data decoded as msgpack")
	}
}
