package client_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// A burst of publishes goes out several per write (framed and masked by the
// client): the broker gets every one, whole and in order, in both codecs,
// sizes mixed around the frame-length forms and the batch bound.
func TestPublishBurstBatched(t *testing.T) {
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		t.Run(codec.String(), func(t *testing.T) {
			tb := newTestBroker(t, broker.Options{QueueBytes: 64 << 20})
			const n = 20000
			var got atomic.Int64
			bad := make(chan string, 1)
			sub, err := tb.broker().Subscribe("burst", func(m *broker.Message) error {
				var v struct {
					I   int    `json:"i" msgpack:"i"`
					Pad string `json:"pad" msgpack:"pad"`
				}
				if err := m.Decode(&v); err != nil || v.I != int(got.Load()) || len(v.Pad) != padLen(v.I) {
					select {
					case bad <- "a message out of order or damaged":
					default:
					}
				}
				got.Add(1)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			c := connect(t, tb.url(), client.WithCodec(codec), client.WithPublishBuffer(n, 256<<20))
			ctx := context.Background()
			for i := 0; i < n; i++ {
				v := map[string]any{"i": i, "pad": strings.Repeat("p", padLen(i))}
				if err := c.PublishNoAck(ctx, "burst", v); err != nil {
					t.Fatal(err)
				}
			}
			// an acknowledged publish after the burst: once it is acked, the
			// broker has routed everything before it
			if err := c.Publish(ctx, "other", 1); err != nil {
				t.Fatal(err)
			}
			eventually(t, "all delivered", func() bool { return got.Load() == n })
			select {
			case msg := <-bad:
				t.Fatal(msg)
			default:
			}
		})
	}
}

// padLen varies the payload size: mostly small, some around 125/126 bytes
// and 64 KiB (the frame-length forms), some larger than a write batch.
func padLen(i int) int {
	switch {
	case i%997 == 0:
		return 70 << 10
	case i%101 == 0:
		return 65530 + i%10
	case i%13 == 0:
		return 100 + i%40
	}
	return i % 50
}

// BenchmarkPublishNoAck: fire-and-forget publishes of 64 bytes through a
// real broker on loopback, until the broker has routed them all.
func BenchmarkPublishNoAck(b *testing.B) {
	tb := newTestBroker(b, broker.Options{})
	c := connect(b, tb.url(), client.WithCodec(protocol.Msgpack), client.WithPublishBuffer(100000, 64<<20))
	ctx := context.Background()
	payload := strings.Repeat("x", 64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.PublishNoAck(ctx, "bench", payload); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.Publish(ctx, "bench", payload); err != nil { // after all the others
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
