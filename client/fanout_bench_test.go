package client_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/protocol"
)

// BenchmarkFanout100: 100 subscribers, each a client.Connect with default
// options, one publisher with PublishNoAck, 128-byte messages, all in one
// process through a real broker on loopback (the path Go users take).
// Reports deliveries/s and the share delivered.
func BenchmarkFanout100(b *testing.B) {
	for _, codec := range []protocol.Codec{protocol.JSON, protocol.Msgpack} {
		b.Run(codec.String(), func(b *testing.B) { benchFanout(b, codec, 100) })
	}
}

func benchFanout(b *testing.B, codec protocol.Codec, n int) {
	tb := newTestBroker(b, broker.Options{})
	ctx := context.Background()
	var got atomic.Int64
	subs := make([]*client.Client, n)
	for i := range subs {
		subs[i] = connect(b, tb.url(), client.WithCodec(codec))
		if _, err := subs[i].Subscribe(ctx, "bench/fanout", func(*client.Message) error {
			got.Add(1)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	pub := connect(b, tb.url(), client.WithCodec(codec))
	payload := strings.Repeat("x", 128)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := pub.PublishNoAck(ctx, "bench/fanout", payload); err != nil {
			b.Fatal(err)
		}
	}
	want := int64(b.N) * int64(n)
	// every delivery, or no progress for a second
	last, lastAt := int64(-1), time.Now()
	for got.Load() < want && time.Since(lastAt) < time.Second {
		if g := got.Load(); g != last {
			last, lastAt = g, time.Now()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := lastAt.Sub(start) // to the last delivery seen
	b.StopTimer()
	b.ReportMetric(float64(got.Load())/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(100*float64(got.Load())/float64(want), "%delivered")
}
