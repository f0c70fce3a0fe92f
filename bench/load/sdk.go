package load

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// sdkConn is a connection of the Go SDK (ferry/client) with its default
// options but the codec: one client.Connect per connection, a handler per
// subscription, PublishNoAck to publish. Only OnStatus and OnError are
// set, to count what the SDK reports (they change nothing it does).
//
// Payloads are those of the load generator's own ferry client: in JSON a
// string of payload characters (the send time in 19 decimal digits, then
// padding), passed to the SDK as a Go string; in msgpack a bin of payload
// bytes (the send time in the first 8), passed as a []byte. The handler
// reads the send time from Message.Data without decoding the rest.
type sdkConn struct {
	c       *client.Client
	codec   protocol.Codec
	payload int
	buf     []byte // the payload being built (JSON digits, or the bin's bytes)

	mu      sync.Mutex
	subs    []*client.Subscription
	closing atomic.Bool
	lostFlag
	slow atomic.Int64 // the broker's slow_consumer and overflow errors
}

func dialSDK(url string, codec protocol.Codec, payload int) (*sdkConn, error) {
	if codec == protocol.JSON && payload < 19 {
		payload = 19
	}
	if payload < 8 {
		payload = 8
	}
	c := &sdkConn{codec: codec, payload: payload}
	if codec == protocol.JSON {
		c.buf = append(bytes.Repeat([]byte{'0'}, 19), bytes.Repeat([]byte{'x'}, payload-19)...)
	} else {
		c.buf = make([]byte, payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Connect(ctx, url, client.WithCodec(codec),
		client.OnStatus(func(s client.Status, err error) {
			if (s == client.Disconnected || s == client.Closed) && !c.closing.Load() {
				c.mark(err)
			}
		}),
		client.OnError(func(err error) {
			var be *client.Error
			if errors.As(err, &be) && errors.Is(err, client.ErrSlowConsumer) {
				c.slow.Add(1)
			}
		}))
	if err != nil {
		return nil, err
	}
	c.c = cl
	return c, nil
}

func (c *sdkConn) Subscribe(topic string, onMsg func(int64)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	codec := c.codec
	s, err := c.c.Subscribe(ctx, topic, func(m *client.Message) error {
		onMsg(readStamp(codec, m.Data))
		return nil
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.subs = append(c.subs, s)
	c.mu.Unlock()
	return nil
}

func (c *sdkConn) Publish(topic string, sentNs int64) error {
	var data any
	if c.codec == protocol.JSON {
		var digits [24]byte
		s := strconv.AppendInt(digits[:0], sentNs, 10)
		off := 19 - len(s)
		for i := 0; i < off; i++ {
			c.buf[i] = '0'
		}
		copy(c.buf[off:], s)
		data = string(c.buf)
	} else {
		binary.BigEndian.PutUint64(c.buf, uint64(sentNs))
		data = bytes.Clone(c.buf) // the SDK encodes it later, in its buffer
	}
	return c.c.PublishNoAck(context.Background(), topic, data)
}

// Flush publishes with an acknowledgement: the SDK sends its buffer in
// order, and the broker handles one connection's frames in order, so the
// ack comes after everything published before was routed.
func (c *sdkConn) Flush(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.c.Publish(ctx, "bench/flush", nil)
}

func (c *sdkConn) SlowConsumer() int64 { return c.slow.Load() }

// Dropped counts the messages the SDK's subscriptions dropped because
// their handler queue was full (DefaultPendingMessages, DefaultPendingBytes).
func (c *sdkConn) Dropped() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, s := range c.subs {
		n += int64(s.Dropped())
	}
	return n
}

func (c *sdkConn) Close() {
	c.closing.Store(true)
	_ = c.c.Close()
}
