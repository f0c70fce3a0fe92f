package client

import (
	"errors"
	"fmt"

	"github.com/ferry-io/ferry/protocol"
)

// Errors of the client.
var (
	// ErrClosed: the client was closed (or gave up reconnecting).
	ErrClosed = errors.New("client: closed")
	// ErrBufferFull: the publish buffer is full and FailFast is set.
	ErrBufferFull = errors.New("client: publish buffer full")
	// ErrSlowConsumer: a subscription's handler fell behind and messages
	// were dropped (reported to OnError as a *SlowConsumerError).
	ErrSlowConsumer = errors.New("client: slow consumer, messages dropped")
	// ErrTimeout: the broker did not answer in time.
	ErrTimeout = errors.New("client: timeout")
	// ErrNotConnected: the call needs a connection and there is none now.
	ErrNotConnected = errors.New("client: not connected")
	// ErrNotAckable: Ack or Nack of a message of a plain subscription.
	ErrNotAckable = errors.New("client: message has no mid to acknowledge")
)

// Error is an error the broker reported with an err frame.
type Error struct {
	Code   string // protocol error code, such as protocol.CodeBadTopic
	Reason string
}

func (e *Error) Error() string { return "client: broker error " + e.Code + ": " + e.Reason }

// Is makes errors.Is(err, ErrSlowConsumer) true for the broker's
// slow_consumer and overflow errors.
func (e *Error) Is(target error) bool {
	return target == ErrSlowConsumer && (e.Code == protocol.CodeSlowConsumer || e.Code == protocol.CodeOverflow)
}

// SlowConsumerError reports messages a subscription dropped because its
// handler fell behind.
type SlowConsumerError struct {
	Filter  string
	Group   string
	Dropped uint64 // since the previous report
}

func (e *SlowConsumerError) Error() string {
	return fmt.Sprintf("client: slow consumer on %q: %d messages dropped", e.Filter, e.Dropped)
}

func (e *SlowConsumerError) Unwrap() error { return ErrSlowConsumer }
