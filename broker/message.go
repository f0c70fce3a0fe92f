package broker

import (
	"encoding/json"
	"fmt"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// Message is a published message as the in-process API sees it.
type Message struct {
	// Topic the message was published on.
	Topic string
	// Data is one value encoded in Codec: JSON text, or one msgpack value.
	Data []byte
	// Codec of Data. The zero value is JSON.
	Codec protocol.Codec
}

// JSON returns Data as JSON text, converting from msgpack if needed (see
// protocol.Convert for how msgpack-only values are represented).
func (m *Message) JSON() ([]byte, error) {
	return protocol.Convert(nil, m.Codec, protocol.JSON, m.Data)
}

// Decode unmarshals Data into v with the codec's library.
func (m *Message) Decode(v any) error {
	if m.Codec == protocol.Msgpack {
		return msgpack.Unmarshal(m.Data, v)
	}
	return json.Unmarshal(m.Data, v)
}

// validate checks that Data is one value of its codec.
func (m *Message) validate() error {
	switch m.Codec {
	case protocol.JSON:
		if !protocol.ValidJSON(m.Data) {
			return fmt.Errorf("%w: data is not one valid JSON value", ErrBadData)
		}
	case protocol.Msgpack:
		if !protocol.ValidMsgpack(m.Data) {
			return fmt.Errorf("%w: data is not one valid msgpack value", ErrBadData)
		}
	default:
		return fmt.Errorf("%w: unknown codec %v", ErrBadData, m.Codec)
	}
	return nil
}

// delivery is a message being routed: it encodes its msg frame at most once
// per codec, and every connection of that codec shares the bytes.
type delivery struct {
	b      *Broker
	topic  string
	codec  protocol.Codec
	data   []byte // borrowed for the duration of the publish
	frames [protocol.NumCodecs][]byte
	owned  *Message // a copy for in-process subscribers, made on first use
}

// frame returns the complete WebSocket frame (header included) of the msg
// frame in codec c. If the data cannot be sent in c (it cannot be
// converted, or grows past the frame limit in conversion), the frame is an
// err telling the subscriber what was not delivered, counted as dropped.
func (d *delivery) frame(c protocol.Codec) []byte {
	if f := d.frames[c]; f != nil {
		return f
	}
	data := d.data
	var err error
	if c != d.codec {
		data, err = protocol.Convert(nil, d.codec, c, d.data)
	}
	limit := d.b.opts.MaxFrameBytes
	if err == nil && len(data) <= limit {
		fr := protocol.Frame{Op: protocol.OpMsg, Topic: d.topic, Data: data}
		d.frames[c] = encodeFrame(c, &fr)
		return d.frames[c]
	}
	reason := fmt.Sprintf("a message on topic %q was not delivered: as %v its data is %d bytes, over the frame limit of %d", d.topic, c, len(data), limit)
	code := protocol.CodeTooLarge
	if err != nil {
		reason = fmt.Sprintf("a message on topic %q was not delivered: its data cannot be sent as %v", d.topic, c)
		code = protocol.CodeInternal
	}
	d.b.log.Warn("ferry: "+reason, "err", err)
	d.b.stats.dropped.Add(1)
	d.frames[c] = encodeFrame(c, &protocol.Frame{Op: protocol.OpErr, Code: code, Reason: reason})
	return d.frames[c]
}

// message returns an owned copy of the message for in-process subscribers.
func (d *delivery) message() *Message {
	if d.owned == nil {
		d.owned = &Message{Topic: d.topic, Data: append([]byte(nil), d.data...), Codec: d.codec}
	}
	return d.owned
}

// Largest WebSocket frame header a server sends (no mask).
const maxHeader = 10

// encodeFrame encodes f in codec c as one complete, unmasked WebSocket data
// frame: text for JSON, binary for msgpack.
func encodeFrame(c protocol.Codec, f *protocol.Frame) []byte {
	buf := make([]byte, maxHeader, maxHeader+64+len(f.Topic)+len(f.Data)+len(f.Reason))
	buf = protocol.Append(c, buf, f)
	opcode := byte(0x1)
	if c == protocol.Msgpack {
		opcode = 0x2
	}
	return wsFrame(buf, opcode)
}

// wsFrame writes the header of a final frame with the given opcode in front
// of buf[maxHeader:] and returns the frame.
func wsFrame(buf []byte, opcode byte) []byte {
	n := len(buf) - maxHeader
	var h int
	switch {
	case n < 126:
		h = 2
		buf[maxHeader-1] = byte(n)
	case n <= 0xffff:
		h = 4
		buf[maxHeader-3] = 126
		buf[maxHeader-2] = byte(n >> 8)
		buf[maxHeader-1] = byte(n)
	default:
		h = 10
		buf[1] = 127
		for i := 0; i < 8; i++ {
			buf[maxHeader-1-i] = byte(uint64(n) >> (8 * i))
		}
	}
	buf[maxHeader-h] = 0x80 | opcode
	return buf[maxHeader-h:]
}

// controlFrame builds a WebSocket control frame (ping or close).
func controlFrame(opcode byte, payload []byte) []byte {
	buf := make([]byte, maxHeader, maxHeader+len(payload))
	return wsFrame(append(buf, payload...), opcode)
}

const (
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// closeFrame builds a close frame with a code and a reason (cut to fit the
// 125-byte control frame limit).
func closeFrame(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := append([]byte{byte(code >> 8), byte(code)}, reason...)
	return controlFrame(opClose, p)
}
