package client

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// The string and []byte fast paths of encodeData encode what the codecs'
// libraries do (msgpack: the same bytes; JSON: the same value), at every
// length form and with strings JSON must escape.
func TestEncodeDataFastPaths(t *testing.T) {
	var cases []string
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		cases = append(cases, strings.Repeat("a", n))
	}
	cases = append(cases, "quote \" backslash \\ newline \n tab \t nul \x00 <>& é 😀")
	for _, s := range cases {
		got, err := encodeData(protocol.Msgpack, s)
		want, _ := msgpack.Marshal(s)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("msgpack string of %d bytes: % x, want % x (%v)", len(s), got[:min(8, len(got))], want[:min(8, len(want))], err)
		}
		got, err = encodeData(protocol.Msgpack, []byte(s))
		want, _ = msgpack.Marshal([]byte(s))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("msgpack bin of %d bytes differs (%v)", len(s), err)
		}
		got, err = encodeData(protocol.JSON, s)
		var back string
		if err != nil || json.Unmarshal(got, &back) != nil || back != s {
			t.Fatalf("JSON string of %d bytes: %.40s (%v)", len(s), got, err)
		}
	}
}
