package protocol

import "fmt"

// Subprotocol names offered in Sec-WebSocket-Protocol.
const (
	SubprotocolJSON    = "ferry.v1.json"
	SubprotocolMsgpack = "ferry.v1.msgpack"
)

// Codec is the encoding of a frame: JSON in text messages, msgpack in binary
// messages.
type Codec uint8

const (
	JSON Codec = iota
	Msgpack

	// NumCodecs is the number of codecs, for arrays indexed by Codec.
	NumCodecs = 2
)

func (c Codec) String() string {
	switch c {
	case JSON:
		return "json"
	case Msgpack:
		return "msgpack"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// Subprotocol returns the subprotocol name of the codec.
func (c Codec) Subprotocol() string {
	if c == Msgpack {
		return SubprotocolMsgpack
	}
	return SubprotocolJSON
}

// CodecForSubprotocol returns the codec named by a subprotocol.
func CodecForSubprotocol(name string) (Codec, bool) {
	switch name {
	case SubprotocolJSON:
		return JSON, true
	case SubprotocolMsgpack:
		return Msgpack, true
	}
	return JSON, false
}

// Operations.
const (
	OpSub   = "sub"
	OpUnsub = "unsub"
	OpPub   = "pub"
	OpAck   = "ack"
	OpNack  = "nack"
	OpPing  = "ping"
	OpMsg   = "msg"
	OpErr   = "err"
	OpPong  = "pong"
	// OpSession is the first frame to a client that connected with a
	// session id: fields session (the id) and resumed.
	OpSession = "session"
	// OpAuth replaces a connection's credential with a fresh one (field
	// token) before the old one expires.
	OpAuth = "auth"
)

// Error codes carried by err frames.
const (
	CodeBadFrame  = "bad_frame"
	CodeBadTopic  = "bad_topic"
	CodeUnknownOp = "unknown_op"
	CodeTooLarge  = "too_large"
	CodeForbidden = "forbidden"
	// CodeUnauthorized refuses an auth frame: the token is invalid, or
	// names another subject. The connection keeps its credential.
	CodeUnauthorized  = "unauthorized"
	CodeRateLimited   = "rate_limited"
	CodeNotSubscribed = "not_subscribed"
	CodeSlowConsumer  = "slow_consumer"
	CodeOverflow      = "overflow"
	CodeInternal      = "internal"
	// CodeLimit: a configured limit other than size was reached (for
	// example the number of subscriptions of one connection).
	CodeLimit = "limit"
	// CodeUnsupported: a valid request for a feature this broker does not
	// offer.
	CodeUnsupported = "unsupported"
)

// WebSocket close codes used by the broker.
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001 // broker shutting down
	CloseProtocol     = 1002 // a frame header RFC 6455 forbids
	CloseInvalidData  = 1007 // invalid UTF-8 in a text message
	ClosePolicy       = 1008
	CloseTooLarge     = 1009 // message over the frame limit
	CloseInternal     = 1011 // a recovered internal error (panic)
	CloseTryAgain     = 1013 // a limit of the broker's, met between the upgrade and the session
	CloseIdleTimeout  = 4000 // no traffic (nor pong) within the idle timeout
	CloseTokenExpired = 4001 // the connection's credential expired
	CloseSlowConsumer = 4008 // outbound queue full under the disconnect policy
	CloseTakenOver    = 4009 // a newer connection resumed the same session
)

// Default limits.
const (
	DefaultMaxFrameBytes = 1 << 20
	DefaultMaxTopicBytes = 256
	// MaxDepth is the deepest nesting of arrays and maps accepted in data.
	MaxDepth = 100
)

// Error is a protocol error: what an err frame carries.
type Error struct {
	Code   string
	Reason string
	// Err is the cause, when another error led to this one (errors.Is
	// and errors.As reach it).
	Err error
}

func (e *Error) Error() string { return e.Code + ": " + e.Reason }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns a protocol error with code whose reason is prefix and err's
// text, and whose cause is err.
func Wrap(code, prefix string, err error) *Error {
	return &Error{Code: code, Reason: prefix + err.Error(), Err: err}
}

// Errorf returns a protocol error with a formatted reason.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Reason: fmt.Sprintf(format, args...)}
}
