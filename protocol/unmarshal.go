package protocol

import (
	"encoding/json"

	"github.com/vmihailenco/msgpack/v5"
)

// Unmarshal decodes data, one value encoded in codec c, into v with the
// codec's library: encoding/json for JSON, github.com/vmihailenco/msgpack/v5
// for msgpack. Struct fields are matched by their json or msgpack tags.
func Unmarshal(c Codec, data []byte, v any) error {
	if c == Msgpack {
		return msgpack.Unmarshal(data, v)
	}
	return json.Unmarshal(data, v)
}
