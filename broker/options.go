package broker

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// Defaults for Options. A zero field in Options means its default.
const (
	DefaultMaxFrameBytes    = protocol.DefaultMaxFrameBytes
	DefaultMaxTopicBytes    = protocol.DefaultMaxTopicBytes
	DefaultMaxSubscriptions = 1000
	DefaultQueueBytes       = 16 << 20
	DefaultMaxStall         = 5 * time.Millisecond
	DefaultDrainTimeout     = 2 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultPingInterval     = 20 * time.Second
	DefaultIdleTimeout      = 45 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultReadBufferSize   = 256
	DefaultAckWait          = 30 * time.Second
	DefaultAckStall         = 2 * time.Second
	DefaultInflight         = 32
	DefaultMaxInflight      = 1000
	DefaultAckQueue         = 1000
	DefaultSessionTTL       = 2 * time.Minute
	DefaultMaxRetained      = 10000
	DefaultMaxRetainedBytes = 64 << 20
	DefaultMaxSessions      = 10000
)

// SlowConsumerPolicy says what happens when a connection's outbound queue is
// full.
type SlowConsumerPolicy string

const (
	// Disconnect closes the connection with close code 4008 and reason
	// "slow consumer". The default.
	Disconnect SlowConsumerPolicy = "disconnect"
	// Drop drops the message for that connection and later tells it with an
	// err frame of code "overflow" carrying the number dropped.
	Drop SlowConsumerPolicy = "drop"
)

// Options configure a Broker. The zero value of every field means its
// default; New reports a field that is out of range.
type Options struct {
	// MaxFrameBytes is the largest WebSocket message accepted from a client.
	// A larger one closes the connection with 1009. Default 1 MiB.
	MaxFrameBytes int
	// MaxTopicBytes is the longest topic or filter, in bytes. Default 256.
	MaxTopicBytes int
	// MaxSubscriptions is the most subscriptions one connection may hold.
	// Default 1000; negative means no limit.
	MaxSubscriptions int
	// QueueBytes bounds each connection's (and each in-process
	// subscription's) outbound queue, in bytes. Default 16 MiB (a burst of fan-in from many publishers fits; NATS allows 64 MiB).
	QueueBytes int
	// SlowConsumer is the policy applied when a queue is full. Default
	// Disconnect.
	SlowConsumer SlowConsumerPolicy
	// MaxStall is how long one publish may wait, in total, for room in full
	// subscriber queues before the slow-consumer policy applies, unless a
	// queue it waits for is draining (see DrainTimeout): a brief stall of
	// the publisher absorbs bursts. Default 5 ms; negative means never
	// wait.
	MaxStall time.Duration
	// DrainTimeout is how long the subscriber of a full queue may make no
	// progress (no write to it completes and, on Linux, it acknowledges
	// none of the bytes written to its socket) before the slow-consumer
	// policy applies. While it makes progress, publishers wait for room in
	// its queue beyond MaxStall, however long the queue stays full
	// (backpressure: a burst from many publishers reaches a subscriber
	// that keeps reading at its own pace, and the publishers slow down to
	// it). Messages from the cluster get MaxStall only. Default 2 s;
	// negative means a publish waits at most MaxStall in total.
	DrainTimeout time.Duration
	// HandshakeTimeout bounds writing the upgrade response. Default 5 s.
	// (Reading the request is bounded by the http.Server's
	// ReadHeaderTimeout, which the embedding application sets.)
	HandshakeTimeout time.Duration
	// PingInterval is how often a quiet connection gets a WebSocket ping.
	// Default 20 s; negative disables pings and the idle timeout.
	PingInterval time.Duration
	// IdleTimeout closes a connection from which nothing (not even a pong)
	// arrived for this long, with close code 4000. Default 45 s; it must be
	// longer than PingInterval.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a connection's socket; a peer that
	// stops reading for longer is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// ReadBufferSize is the size of each connection's own read buffer,
	// which it keeps while idle. Default 256 bytes (the smallest allowed).
	// A connection that receives more than that at once reads ahead into
	// a 32 KiB buffer taken from a pool, and gives it back when the peer
	// has sent no more.
	ReadBufferSize int
	// AckWait is how long an acknowledged subscription's delivery may stay
	// unacknowledged before it is delivered again. Default 30 s.
	AckWait time.Duration
	// AckStall is MaxStall for acknowledged subscriptions: how long one
	// publish may wait for room in their full queues before the policy
	// applies. Longer, so that a consumer that is slow but acknowledging
	// slows its publishers down rather than losing messages. Default 2 s;
	// negative means never wait.
	AckStall time.Duration
	// MaxInflight is the largest "inflight" window a subscription may ask
	// for (the default window is 32). Default 1000.
	MaxInflight int
	// AckQueue bounds, in messages, each acknowledged subscription's queue
	// of messages waiting for its window (also while its session is
	// disconnected). Its bytes are bounded by QueueBytes. Default 1000.
	AckQueue int
	// SessionTTL is how long a disconnected session keeps its acknowledged
	// subscriptions and their queues for the client to resume. Default 2 min;
	// negative disables sessions (a session id
	// in the URL is then ignored).
	SessionTTL time.Duration
	// MaxSessions bounds the sessions with an id held at once (connected
	// or kept for resume); a connection asking for a new one beyond it gets
	// HTTP 503. Default 10000.
	MaxSessions int
	// MaxRetained and MaxRetainedBytes bound the retained messages (one per
	// topic). Defaults 10000 and 64 MiB.
	MaxRetained      int
	MaxRetainedBytes int
	// Cluster, when set, joins this broker to others (see package
	// natscluster). Default: a single node.
	Cluster Cluster
	// MaxConnections bounds the WebSocket connections held at once; a
	// request beyond it gets HTTP 503. Default 0: no bound.
	MaxConnections int
	// ConnRate and ConnBurst limit new connections per client IP address
	// with a token bucket (ConnRate per second, ConnBurst at once); a
	// request beyond gets HTTP 429 with Retry-After. The addresses of the
	// 10,000 most recent clients are tracked. Default 0: no limit;
	// ConnBurst defaults to ConnRate (at least 1).
	ConnRate  float64
	ConnBurst int
	// TrustedProxies lists the addresses (IPs or CIDR blocks) of proxies
	// whose X-Forwarded-For names the client, for ConnRate. Default none:
	// the client is the peer of the TCP connection.
	TrustedProxies []string
	// PubRate and PubBurst limit each connection's publishes with a token
	// bucket: PubRate per second on average, PubBurst at once. A publish
	// over it gets an err "rate_limited" with its id, and nothing else
	// happens to the connection. Default 0: no limit; PubBurst defaults to
	// PubRate (at least 1).
	PubRate  float64
	PubBurst int
	// AllowedOrigins lists the browser origins that may connect, replacing
	// the default rule: exact origins ("https://app.example.com", scheme
	// and port compared), globs ("https://*.example.com": subdomains at any
	// depth, not example.com itself), or "*" for every origin (logged as a
	// warning). Default (nil): a request with an Origin header may connect
	// only when the origin's host and port are the request's Host, so a
	// page on another site cannot drive a broker on the user's machine or
	// network; requests without Origin (programs, not browsers) always may.
	// A refused request gets HTTP 403.
	AllowedOrigins []string
	// Authenticate, when set, checks every WebSocket request before the
	// upgrade and returns who it is (Credential finds the token a request
	// carries). An error refuses the request with HTTP 401 and a
	// WWW-Authenticate challenge: ErrNoCredential (wrapped or not) as a
	// missing credential, any other error as an invalid one, its text the
	// reason (which must not contain the credential). Default: no
	// authentication, every connection has the Identity nil.
	Authenticate func(r *http.Request) (*Identity, error)
	// ACL grants permissions by identity, to authenticated connections
	// whose Identity carries no Permissions of its own (see Permissions
	// and ACLEntry). Used when Authorize is nil.
	ACL []ACLEntry
	// Authorize, when set, decides whether a connection of identity id
	// (nil without Authenticate) may do a on topic (a topic for Publish, a
	// filter for Subscribe); a refusal is an err "forbidden" naming the op
	// and the topic, and the connection goes on. It is called on every pub,
	// sub and unsub, on the connection's reader: it must be fast and must
	// not block. Default: with Authenticate, the identity's Permissions, or
	// what ACL grants it (nothing when neither grants anything), compiled
	// once per connection; without Authenticate, everything. The
	// in-process API (Publish, Subscribe) is the application and is not
	// checked.
	Authorize func(id *Identity, a Action, topic string) bool
	// CheckOrigin, when set, decides instead of AllowedOrigins and the
	// default rule whether a WebSocket request may connect; a refused
	// request gets HTTP 403.
	CheckOrigin func(r *http.Request) bool
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
}

// withDefaults returns a copy of o with defaults filled in, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	o.MaxFrameBytes = cmp.Or(o.MaxFrameBytes, DefaultMaxFrameBytes)
	o.MaxTopicBytes = cmp.Or(o.MaxTopicBytes, DefaultMaxTopicBytes)
	o.MaxSubscriptions = cmp.Or(o.MaxSubscriptions, DefaultMaxSubscriptions)
	o.QueueBytes = cmp.Or(o.QueueBytes, DefaultQueueBytes)
	o.ReadBufferSize = cmp.Or(o.ReadBufferSize, DefaultReadBufferSize)
	o.MaxInflight = cmp.Or(o.MaxInflight, DefaultMaxInflight)
	o.AckQueue = cmp.Or(o.AckQueue, DefaultAckQueue)
	o.MaxRetained = cmp.Or(o.MaxRetained, DefaultMaxRetained)
	o.MaxSessions = cmp.Or(o.MaxSessions, DefaultMaxSessions)
	o.MaxRetainedBytes = cmp.Or(o.MaxRetainedBytes, DefaultMaxRetainedBytes)
	o.AckWait = cmp.Or(o.AckWait, DefaultAckWait)
	o.AckStall = cmp.Or(o.AckStall, DefaultAckStall)
	o.SessionTTL = cmp.Or(o.SessionTTL, DefaultSessionTTL)
	o.MaxStall = cmp.Or(o.MaxStall, DefaultMaxStall)
	o.DrainTimeout = cmp.Or(o.DrainTimeout, DefaultDrainTimeout)
	o.HandshakeTimeout = cmp.Or(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.PingInterval = cmp.Or(o.PingInterval, DefaultPingInterval)
	o.IdleTimeout = cmp.Or(o.IdleTimeout, DefaultIdleTimeout)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, DefaultWriteTimeout)
	o.SlowConsumer = cmp.Or(o.SlowConsumer, Disconnect)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.MaxFrameBytes < 64:
		return o, fmt.Errorf("ferry: Options.MaxFrameBytes is %d: must be at least 64", o.MaxFrameBytes)
	case o.MaxTopicBytes < 1:
		return o, fmt.Errorf("ferry: Options.MaxTopicBytes is %d: must be positive", o.MaxTopicBytes)
	case o.QueueBytes < 1024:
		return o, fmt.Errorf("ferry: Options.QueueBytes is %d: must be at least 1024", o.QueueBytes)
	case o.ReadBufferSize < 256:
		return o, fmt.Errorf("ferry: Options.ReadBufferSize is %d: must be at least 256", o.ReadBufferSize)
	case o.SlowConsumer != Disconnect && o.SlowConsumer != Drop:
		return o, fmt.Errorf("ferry: Options.SlowConsumer is %q: must be %q or %q", o.SlowConsumer, Disconnect, Drop)
	case o.HandshakeTimeout < 0:
		return o, fmt.Errorf("ferry: Options.HandshakeTimeout is %v: must be positive", o.HandshakeTimeout)
	case o.WriteTimeout < 0:
		return o, fmt.Errorf("ferry: Options.WriteTimeout is %v: must be positive", o.WriteTimeout)
	case o.AckWait < 0:
		return o, fmt.Errorf("ferry: Options.AckWait is %v: must be positive", o.AckWait)
	case o.MaxInflight < 1:
		return o, fmt.Errorf("ferry: Options.MaxInflight is %d: must be positive", o.MaxInflight)
	case o.AckQueue < 1:
		return o, fmt.Errorf("ferry: Options.AckQueue is %d: must be positive", o.AckQueue)
	case o.MaxConnections < 0:
		return o, fmt.Errorf("ferry: Options.MaxConnections is %d: must not be negative (0 means no bound)", o.MaxConnections)
	case o.ConnRate < 0 || o.ConnBurst < 0:
		return o, fmt.Errorf("ferry: Options.ConnRate and ConnBurst must not be negative")
	case o.PubRate < 0 || o.PubBurst < 0:
		return o, fmt.Errorf("ferry: Options.PubRate and PubBurst must not be negative")
	case o.MaxSessions < 0:
		return o, fmt.Errorf("ferry: Options.MaxSessions is %d: must not be negative (0 means the default, %d)", o.MaxSessions, DefaultMaxSessions)
	case o.MaxRetained < 0 || o.MaxRetainedBytes < 0:
		return o, fmt.Errorf("ferry: Options.MaxRetained and MaxRetainedBytes must not be negative")
	case o.PingInterval > 0 && o.IdleTimeout <= o.PingInterval:
		return o, fmt.Errorf("ferry: Options.IdleTimeout (%v) must be longer than Options.PingInterval (%v)", o.IdleTimeout, o.PingInterval)
	}
	return o, nil
}

// ParsePolicy parses a slow-consumer policy name.
func ParsePolicy(s string) (SlowConsumerPolicy, error) {
	switch p := SlowConsumerPolicy(s); p {
	case Disconnect, Drop:
		return p, nil
	}
	return "", fmt.Errorf("ferry: unknown slow-consumer policy %q (want %q or %q)", s, Disconnect, Drop)
}
