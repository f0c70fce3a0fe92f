package client

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Defaults for Options.
const (
	DefaultDialTimeout     = 5 * time.Second
	DefaultReconnectMin    = 250 * time.Millisecond
	DefaultReconnectMax    = 10 * time.Second
	DefaultReconnectFactor = 2.0
	DefaultPingInterval    = 10 * time.Second
	DefaultPingTimeout     = 5 * time.Second
	DefaultBufferMessages  = 1000
	DefaultBufferBytes     = 1 << 20
	DefaultPendingMessages = 10000
	DefaultPendingBytes    = 16 << 20
	DefaultMaxHold         = time.Second
)

// Options configure a Client. Connect starts from the defaults and applies
// each Option in turn; a zero field means its default.
type Options struct {
	// Codec of the frames the client sends and asks the broker for.
	// Default JSON.
	Codec protocol.Codec
	// Header is sent with the WebSocket handshake (authentication headers,
	// for example). Token, if set, adds "Authorization: Bearer <Token>".
	Header http.Header
	Token  string
	// TokenSource, if set, is called for a token on every connection
	// attempt (the first and each reconnect), within that attempt's
	// deadline; an error fails the attempt. When the token is a JWT with
	// an exp claim it is called again before exp (a fifth of the time
	// left, between a second and a minute before) and the fresh token is
	// sent on the live connection (the protocol's auth op), so that the
	// connection and its subscriptions go on; a refresh that fails is
	// reported through OnError and tried again until exp, when the broker
	// closes the connection (4001) and the client reconnects with a token
	// from the source. It takes precedence over Token.
	TokenSource func(ctx context.Context) (string, error)
	// TLSConfig is used for wss:// URLs. Default: the system's roots.
	TLSConfig *tls.Config
	// DialTimeout bounds each connection attempt. Default 5 s.
	DialTimeout time.Duration
	// Session is the session id the client presents, so that the broker
	// keeps its acknowledged subscriptions across reconnects. Default: a
	// random id per Client. Give a stable id (a device id) to resume after
	// the process restarts too.
	Session string
	// NoSession connects without a session id (for brokers with sessions
	// disabled): acknowledged subscriptions then end with each connection.
	NoSession bool
	// MaxFrameBytes is the largest frame the client sends; a bigger
	// publish fails at once (the broker would close the connection).
	// Default 1 MiB, the broker's default limit.
	MaxFrameBytes int
	// ReconnectMin, ReconnectMax and ReconnectFactor shape the exponential
	// backoff between attempts, with full jitter: attempt n waits a random
	// time between 0 and min(ReconnectMax, ReconnectMin·Factorⁿ). Defaults
	// 250 ms, 10 s, 2.
	ReconnectMin    time.Duration
	ReconnectMax    time.Duration
	ReconnectFactor float64
	// MaxReconnects bounds consecutive failed attempts before the client
	// gives up and closes. Default (0): forever.
	MaxReconnects int
	// PingInterval is how often the client checks that the connection is
	// alive with a ping; a connection from which nothing arrived for
	// PingInterval+PingTimeout is replaced. Defaults 10 s and 5 s.
	PingInterval time.Duration
	PingTimeout  time.Duration
	// BufferMessages and BufferBytes bound the publishes held by the
	// client: not yet sent (also while disconnected), or sent and waiting
	// for the broker's ack. Defaults 1000 and 1 MiB.
	BufferMessages int
	BufferBytes    int
	// FailFast makes publishing fail with ErrBufferFull when the buffer is
	// full, instead of waiting for room.
	FailFast bool
	// PendingMessages and PendingBytes bound each subscription's messages
	// waiting for its handler. Defaults DefaultPendingMessages and
	// DefaultPendingBytes.
	PendingMessages int
	PendingBytes    int
	// DropWhenFull makes a plain subscription whose pending queue is full
	// drop the messages that do not fit, each episode reported as a
	// SlowConsumerError. Default false: backpressure instead of loss. The
	// connection's reader waits for room, so the socket fills, the
	// broker's queue for the connection fills, and the broker holds the
	// publishers while the subscriber makes progress. While it waits,
	// every subscription of the connection waits, and so do replies to
	// the connection's requests (publish acks): a handler that falls
	// behind slows the others of its client. So the reader waits at most
	// MaxHold for one message; after that the subscription drops (and
	// reports) what does not fit until its handler takes a message, so
	// that a handler that waits for something of its own connection (a
	// Publish's ack, say) cannot stall it for good. Give a handler that
	// may be slow a client of its own, or DropWhenFull (also a SubOption
	// for one subscription).
	DropWhenFull bool
	// MaxHold is the longest the reader waits for room in one full
	// subscription (see DropWhenFull). Default DefaultMaxHold.
	MaxHold time.Duration
	// OnStatus is called on every status change, with the reason of a
	// disconnection (on the callback goroutine, in order).
	OnStatus func(s Status, err error)
	// OnError receives errors that belong to no call: ErrSlowConsumer from
	// a subscription that dropped messages, err frames of the broker
	// without an id (on the callback goroutine).
	OnError func(err error)
	// Logger receives the client's logs. Default: discarded.
	Logger *slog.Logger
}

// Option changes Options.
type Option func(*Options) error

// WithCodec sets the codec (JSON or msgpack).
func WithCodec(c protocol.Codec) Option {
	return func(o *Options) error {
		if c != protocol.JSON && c != protocol.Msgpack {
			return fmt.Errorf("client: unknown codec %v", c)
		}
		o.Codec = c
		return nil
	}
}

// WithHeader adds a header to the WebSocket handshake.
func WithHeader(key, value string) Option {
	return func(o *Options) error {
		if o.Header == nil {
			o.Header = http.Header{}
		}
		o.Header.Add(key, value)
		return nil
	}
}

// WithTokenSource calls source for the token of every connection attempt
// (see Options.TokenSource).
func WithTokenSource(source func(ctx context.Context) (string, error)) Option {
	return func(o *Options) error { o.TokenSource = source; return nil }
}

// WithToken sends "Authorization: Bearer token" with the handshake.
func WithToken(token string) Option { return func(o *Options) error { o.Token = token; return nil } }

// WithTLS sets the TLS configuration for wss:// URLs.
func WithTLS(cfg *tls.Config) Option { return func(o *Options) error { o.TLSConfig = cfg; return nil } }

// WithDialTimeout bounds each connection attempt.
func WithDialTimeout(d time.Duration) Option {
	return func(o *Options) error { o.DialTimeout = d; return nil }
}

// WithoutSession connects without a session id.
func WithoutSession() Option { return func(o *Options) error { o.NoSession = true; return nil } }

// WithMaxFrame sets the largest frame the client sends.
func WithMaxFrame(n int) Option { return func(o *Options) error { o.MaxFrameBytes = n; return nil } }

// WithSession sets the session id.
func WithSession(id string) Option { return func(o *Options) error { o.Session = id; return nil } }

// WithReconnect sets the backoff between reconnect attempts.
func WithReconnect(min, max time.Duration, factor float64) Option {
	return func(o *Options) error {
		o.ReconnectMin, o.ReconnectMax, o.ReconnectFactor = min, max, factor
		return nil
	}
}

// WithMaxReconnects gives up after n consecutive failed attempts.
func WithMaxReconnects(n int) Option {
	return func(o *Options) error { o.MaxReconnects = n; return nil }
}

// WithPing sets the keepalive interval and timeout.
func WithPing(interval, timeout time.Duration) Option {
	return func(o *Options) error { o.PingInterval, o.PingTimeout = interval, timeout; return nil }
}

// WithPublishBuffer bounds the publish buffer.
func WithPublishBuffer(messages, bytes int) Option {
	return func(o *Options) error { o.BufferMessages, o.BufferBytes = messages, bytes; return nil }
}

// WithFailFast makes publishing fail with ErrBufferFull instead of waiting.
func WithFailFast() Option { return func(o *Options) error { o.FailFast = true; return nil } }

// WithDropWhenFull makes plain subscriptions drop what does not fit in a
// full pending queue instead of holding the reads (see
// Options.DropWhenFull).
func WithDropWhenFull() Option { return func(o *Options) error { o.DropWhenFull = true; return nil } }

// WithMaxHold sets Options.MaxHold.
func WithMaxHold(d time.Duration) Option { return func(o *Options) error { o.MaxHold = d; return nil } }

// WithPending bounds each subscription's pending messages.
func WithPending(messages, bytes int) Option {
	return func(o *Options) error { o.PendingMessages, o.PendingBytes = messages, bytes; return nil }
}

// OnStatus sets the status callback.
func OnStatus(f func(Status, error)) Option {
	return func(o *Options) error { o.OnStatus = f; return nil }
}

// OnError sets the callback for errors that belong to no call.
func OnError(f func(error)) Option { return func(o *Options) error { o.OnError = f; return nil } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(o *Options) error { o.Logger = l; return nil } }

func (o *Options) setDefaults() error {
	o.DialTimeout = cmp.Or(o.DialTimeout, DefaultDialTimeout)
	o.ReconnectMin = cmp.Or(o.ReconnectMin, DefaultReconnectMin)
	o.ReconnectMax = cmp.Or(o.ReconnectMax, DefaultReconnectMax)
	o.PingInterval = cmp.Or(o.PingInterval, DefaultPingInterval)
	o.PingTimeout = cmp.Or(o.PingTimeout, DefaultPingTimeout)
	o.BufferMessages = cmp.Or(o.BufferMessages, DefaultBufferMessages)
	o.BufferBytes = cmp.Or(o.BufferBytes, DefaultBufferBytes)
	o.PendingMessages = cmp.Or(o.PendingMessages, DefaultPendingMessages)
	o.PendingBytes = cmp.Or(o.PendingBytes, DefaultPendingBytes)
	o.MaxHold = cmp.Or(o.MaxHold, DefaultMaxHold)
	o.MaxFrameBytes = cmp.Or(o.MaxFrameBytes, protocol.DefaultMaxFrameBytes)
	o.ReconnectFactor = cmp.Or(o.ReconnectFactor, DefaultReconnectFactor)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.ReconnectMin < 0 || o.ReconnectMax < o.ReconnectMin:
		return errors.New("client: ReconnectMax must be at least ReconnectMin, both positive")
	case o.ReconnectFactor < 1:
		return fmt.Errorf("client: ReconnectFactor is %v: must be at least 1", o.ReconnectFactor)
	case o.BufferMessages < 1 || o.BufferBytes < 1:
		return errors.New("client: BufferMessages and BufferBytes must be positive")
	case o.PendingMessages < 1 || o.PendingBytes < 1:
		return errors.New("client: PendingMessages and PendingBytes must be positive")
	case o.MaxHold < 0:
		return errors.New("client: MaxHold must be positive")
	case o.PingInterval < 0 || o.PingTimeout < 0:
		return errors.New("client: PingInterval and PingTimeout must be positive")
	}
	return nil
}
