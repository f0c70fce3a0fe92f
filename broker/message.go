package broker

import (
	"fmt"
	"sync"

	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
)

// Message is a published message as the in-process API sees it.
type Message struct {
	// Topic the message was published on.
	Topic string
	// Data is one value encoded in Codec: JSON text, or one msgpack value.
	Data []byte
	// Codec of Data. The zero value is JSON.
	Codec protocol.Codec
	// Retain, on Publish, makes the message its topic's retained message;
	// Data null clears it.
	Retain bool
	// Retained is set on a delivery of a retained message to a new
	// subscription; Redelivered on a delivery that may have been seen
	// before (acknowledged subscriptions).
	Retained    bool
	Redelivered bool
}

// JSON returns Data as JSON text, converting from msgpack if needed (see
// protocol.Convert for how msgpack-only values are represented).
func (m *Message) JSON() ([]byte, error) {
	return protocol.Convert(nil, m.Codec, protocol.JSON, m.Data)
}

// Decode unmarshals Data into v with its codec's library (see
// protocol.Unmarshal).
func (m *Message) Decode(v any) error {
	return protocol.Unmarshal(m.Codec, m.Data, v)
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
	st     *stored // an owned copy, made on first use
}

var deliveryPool = sync.Pool{New: func() any { return new(delivery) }}

// newDelivery returns a delivery from a pool; release gives it back once
// routing is over (nothing keeps a delivery beyond its publish: what is
// kept is its stored copy and its frames).
func newDelivery(b *Broker, topic string, codec protocol.Codec, data []byte) *delivery {
	d := deliveryPool.Get().(*delivery)
	*d = delivery{b: b, topic: topic, codec: codec, data: data}
	return d
}

func (d *delivery) release() {
	*d = delivery{}
	deliveryPool.Put(d)
}

// stored returns the message as an owned copy the broker can keep.
func (d *delivery) stored() *stored {
	if d.st == nil {
		d.st = &stored{topic: d.topic, codec: d.codec, data: append([]byte(nil), d.data...)}
	}
	return d.st
}

// frame returns the complete WebSocket frame (header included) of the msg
// frame in codec c. If the data cannot be sent in c (it cannot be
// converted, or grows past the frame limit in conversion), the frame is an
// err telling the subscriber what was not delivered, counted as dropped.
func (d *delivery) frame(c protocol.Codec) []byte {
	if f := d.frames[c]; f != nil {
		return f
	}
	d.frames[c] = d.b.msgFrame(c, &stored{topic: d.topic, codec: d.codec, data: d.data}, msgOpts{})
	return d.frames[c]
}

// groupFrame is frame for a queue group's delivery, which names the group.
func (d *delivery) groupFrame(c protocol.Codec, g *group) []byte {
	return d.b.msgFrame(c, &stored{topic: d.topic, codec: d.codec, data: d.data}, msgOpts{group: g})
}

// msgOpts are the per-delivery fields of a msg frame.
type msgOpts struct {
	mid         uint64
	redelivered bool
	retained    bool
	group       *group // set on deliveries to a queue group member
	force       bool   // queue it whatever the queue's bound
}

// msgFrame encodes a msg frame of m in codec c. If the data cannot be sent
// in c (it cannot be converted, or grows past the frame limit in
// conversion), the frame is an err telling the subscriber what was not
// delivered, counted as dropped.
func (b *Broker) msgFrame(c protocol.Codec, m *stored, o msgOpts) []byte {
	f, _ := b.encodeMsg(c, m, o)
	return f
}

// encodeMsg is msgFrame that also reports whether the frame is the msg
// (true) or the err that replaces it (false).
func (b *Broker) encodeMsg(c protocol.Codec, m *stored, o msgOpts) ([]byte, bool) {
	data := m.data
	var err error
	if c != m.codec {
		data, err = protocol.Convert(nil, m.codec, c, m.data)
	}
	limit := b.opts.MaxFrameBytes
	if err == nil && len(data) <= limit {
		f := protocol.Frame{Op: protocol.OpMsg, Topic: m.topic, Data: data,
			Mid: o.mid, HasMid: o.mid != 0, Redelivered: o.redelivered, Retained: o.retained}
		if o.group != nil {
			// the group is its name and filter: two groups of one name on
			// overlapping filters are told apart by the filter
			f.Group, f.Filter = o.group.name, o.group.filter
		}
		return encodeFrame(c, &f), true
	}
	reason := fmt.Sprintf("a message on topic %q was not delivered: as %v its data is %d bytes, over the frame limit of %d", m.topic, c, len(data), limit)
	code := protocol.CodeTooLarge
	if err != nil {
		reason = fmt.Sprintf("a message on topic %q was not delivered: its data cannot be sent as %v", m.topic, c)
		code = protocol.CodeInternal
	}
	b.log.Warn("ferry: "+reason, "err", err)
	b.stats.dropped.Add(1)
	return encodeFrame(c, &protocol.Frame{Op: protocol.OpErr, Code: code, Reason: reason}), false
}

// encodeFrame encodes f in codec c as one complete, unmasked WebSocket data
// frame: text for JSON, binary for msgpack.
func encodeFrame(c protocol.Codec, f *protocol.Frame) []byte {
	buf := make([]byte, wsframe.MaxHeader, wsframe.MaxHeader+64+len(f.Topic)+len(f.Data)+len(f.Reason))
	buf = protocol.Append(c, buf, f)
	opcode := byte(wsframe.OpText)
	if c == protocol.Msgpack {
		opcode = wsframe.OpBinary
	}
	return wsframe.Frame(buf, opcode)
}
