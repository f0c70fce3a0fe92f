package protocol

import "unicode/utf8"

// Frame is one protocol frame, in either direction. Optional numbers have a
// Has flag so that zero stays a valid value.
type Frame struct {
	Op    string
	ID    uint64
	HasID bool
	Topic string
	Group string
	// Filter is set on msg frames to a queue group member: the group's
	// filter (a group is its name and its filter).
	Filter string
	// Data is the payload as raw bytes of the frame's codec (one complete
	// JSON or msgpack value); nil when the frame has no data field.
	Data        []byte
	Ack         bool
	Retain      bool
	Inflight    uint64
	HasInflight bool
	Mid         uint64
	HasMid      bool
	Redelivered bool
	Retained    bool
	Code        string
	Reason      string
	// Dropped is set on err frames with code overflow: how many messages
	// were dropped since the previous report.
	Dropped uint64
	// Session and Resumed are the fields of the session frame the broker
	// sends first to a client that connected with a session id.
	Session string
	Resumed bool
	// Token is the fresh credential of an auth frame.
	Token string
}

// Reset clears f for reuse.
func (f *Frame) Reset() { *f = Frame{} }

// reset clears f for decoding into it and returns the topic it held.
// Decoders reuse that string when the next frame has the same topic, so a
// connection that receives (or sends) many messages on one topic decodes
// them without allocating; strings are immutable, so sharing is safe.
func (f *Frame) reset() (prevTopic string) {
	prevTopic = f.Topic
	*f = Frame{}
	return prevTopic
}

// IsClientOp reports whether op is one a client may send.
func IsClientOp(op string) bool {
	switch op {
	case OpSub, OpUnsub, OpPub, OpAck, OpNack, OpPing, OpAuth:
		return true
	}
	return false
}

// check verifies that a decoded client frame has what its op needs. Topic
// syntax is checked by the broker, which knows its limits.
func (f *Frame) check() *Error {
	switch f.Op {
	case "":
		return Errorf(CodeBadFrame, `missing field "op"`)
	case OpSub, OpUnsub:
		if f.Topic == "" {
			return Errorf(CodeBadFrame, `%s: missing field "topic"`, f.Op)
		}
	case OpPub:
		if f.Topic == "" {
			return Errorf(CodeBadFrame, `pub: missing field "topic"`)
		}
		if f.Data == nil {
			return Errorf(CodeBadFrame, `pub: missing field "data"`)
		}
	case OpAck, OpNack:
		if !f.HasMid {
			return Errorf(CodeBadFrame, `%s: missing field "mid"`, f.Op)
		}
	case OpAuth:
		if f.Token == "" {
			return Errorf(CodeBadFrame, `auth: missing field "token"`)
		}
	case OpPing:
	default:
		return Errorf(CodeUnknownOp, "unknown op %q (expected sub, unsub, pub, ack, nack, ping or auth)", truncate(f.Op, 32))
	}
	return nil
}

// truncate shortens s to at most n bytes (not splitting a UTF-8 sequence)
// for use in a reason.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n // not UTF-8 anyway
	}
	return s[:i] + "..."
}

// fieldKind is how a known key is decoded.
type fieldKind uint8

const (
	kindString fieldKind = iota + 1
	kindUint
	kindBool
	kindData
)

// fieldOf returns the kind of a known key of any frame, or 0 for unknown
// keys, which are skipped.
func fieldOf(key string) fieldKind {
	switch key {
	case "op", "topic", "group", "filter", "code", "reason", "session", "token":
		return kindString
	case "id", "inflight", "mid", "dropped":
		return kindUint
	case "ack", "retain", "redelivered", "retained", "resumed":
		return kindBool
	case "data":
		return kindData
	}
	return 0
}

// knownKey returns the name of a known key as a constant, so that decoding
// allocates nothing for keys, or "" for an unknown key.
func knownKey(b []byte) string {
	switch string(b) {
	case "op":
		return "op"
	case "session":
		return "session"
	case "token":
		return "token"
	case "resumed":
		return "resumed"
	case "topic":
		return "topic"
	case "group":
		return "group"
	case "filter":
		return "filter"
	case "code":
		return "code"
	case "reason":
		return "reason"
	case "id":
		return "id"
	case "inflight":
		return "inflight"
	case "mid":
		return "mid"
	case "dropped":
		return "dropped"
	case "ack":
		return "ack"
	case "retain":
		return "retain"
	case "redelivered":
		return "redelivered"
	case "retained":
		return "retained"
	case "data":
		return "data"
	}
	return ""
}

// stringValue returns the value of a string field; known ops are returned
// as constants, and a topic equal to prevTopic (the topic of the frame
// decoded before into the same Frame) as prevTopic, without allocating.
func stringValue(key string, b []byte, prevTopic string) string {
	if key == "topic" && string(b) == prevTopic {
		return prevTopic
	}
	if key == "op" {
		switch string(b) {
		case OpSub:
			return OpSub
		case OpUnsub:
			return OpUnsub
		case OpPub:
			return OpPub
		case OpAck:
			return OpAck
		case OpNack:
			return OpNack
		case OpPing:
			return OpPing
		case OpMsg:
			return OpMsg
		case OpErr:
			return OpErr
		case OpPong:
			return OpPong
		case OpAuth:
			return OpAuth
		}
	}
	return string(b)
}

func (f *Frame) setString(key, v string) {
	switch key {
	case "op":
		f.Op = v
	case "topic":
		f.Topic = v
	case "group":
		f.Group = v
	case "filter":
		f.Filter = v
	case "code":
		f.Code = v
	case "reason":
		f.Reason = v
	case "session":
		f.Session = v
	case "token":
		f.Token = v
	}
}

func (f *Frame) setUint(key string, v uint64) {
	switch key {
	case "id":
		f.ID, f.HasID = v, true
	case "inflight":
		f.Inflight, f.HasInflight = v, true
	case "mid":
		f.Mid, f.HasMid = v, true
	case "dropped":
		f.Dropped = v
	}
}

func (f *Frame) setBool(key string, v bool) {
	switch key {
	case "ack":
		f.Ack = v
	case "retain":
		f.Retain = v
	case "redelivered":
		f.Redelivered = v
	case "retained":
		f.Retained = v
	case "resumed":
		f.Resumed = v
	}
}

func kindName(k fieldKind) string {
	switch k {
	case kindString:
		return "a string"
	case kindUint:
		return "an unsigned integer"
	case kindBool:
		return "a boolean"
	}
	return "a value"
}

// Decode decodes one client frame of the given codec into f. On error f
// holds what could be read (HasID tells whether the reply can carry the id).
func Decode(c Codec, b []byte, f *Frame) *Error {
	if c == Msgpack {
		return DecodeMsgpack(b, f)
	}
	return DecodeJSON(b, f)
}

// DecodeAny decodes a frame of either direction, for clients reading the
// broker's frames: unlike Decode it accepts any op.
func DecodeAny(c Codec, b []byte, f *Frame) *Error {
	if c == Msgpack {
		return decodeMsgpack(b, f)
	}
	return decodeJSON(b, f)
}

// Append appends the encoding of f in codec c to dst. f.Data must already be
// in codec c.
func Append(c Codec, dst []byte, f *Frame) []byte {
	if c == Msgpack {
		return AppendMsgpack(dst, f)
	}
	return AppendJSON(dst, f)
}
