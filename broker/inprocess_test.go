package broker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

func TestInProcessSubscribe(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	got := make(chan *broker.Message, 10)
	var handlerGoroutineBusy sync.Mutex
	sub, err := b.Subscribe("sensors/#", func(m *broker.Message) error {
		handlerGoroutineBusy.Lock() // handlers of one subscription never overlap
		defer handlerGoroutineBusy.Unlock()
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	js := dial(t, url)
	mpc := dial(t, url, "ferry.v1.msgpack")
	js.mustAck(map[string]any{"op": "pub", "topic": "sensors/a", "data": map[string]any{"v": 1}})
	mpc.mustAck(map[string]any{"op": "pub", "topic": "sensors/b", "data": map[string]any{"v": 2, "raw": []byte{1, 2}}})

	for _, want := range []struct {
		topic string
		codec protocol.Codec
		v     int
	}{{"sensors/a", protocol.JSON, 1}, {"sensors/b", protocol.Msgpack, 2}} {
		m := <-got
		if m.Topic != want.topic || m.Codec != want.codec {
			t.Fatalf("got %s %v, want %s %v", m.Topic, m.Codec, want.topic, want.codec)
		}
		var v struct {
			V int `json:"v" msgpack:"v"`
		}
		if err := m.Decode(&v); err != nil || v.V != want.v {
			t.Fatalf("decode: %v %+v", err, v)
		}
		j, err := m.JSON()
		if err != nil {
			t.Fatal(err)
		}
		if m.Codec == protocol.Msgpack && string(j) != `{"raw":"AQI=","v":2}` && string(j) != `{"v":2,"raw":"AQI="}` {
			t.Fatalf("JSON() = %s", j)
		}
	}
	sub.Unsubscribe()
	sub.Unsubscribe() // twice is fine
	js.mustAck(map[string]any{"op": "pub", "topic": "sensors/c", "data": 3})
	if st := b.Stats(); st.Subscriptions != 0 {
		t.Fatalf("subscriptions after unsubscribe: %d", st.Subscriptions)
	}
	select {
	case m := <-got:
		t.Fatalf("delivery after Unsubscribe: %v", m.Topic)
	default:
	}
}

func TestInProcessPublish(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	js := dial(t, url)
	mpc := dial(t, url, "ferry.v1.msgpack")
	js.mustAck(map[string]any{"op": "sub", "topic": "cmd/+"})
	mpc.mustAck(map[string]any{"op": "sub", "topic": "cmd/+"})
	ctx := context.Background()
	if err := b.Publish(ctx, broker.Message{Topic: "cmd/reboot", Data: []byte(`{"delay":5}`)}); err != nil {
		t.Fatal(err)
	}
	raw, _ := msgpack.Marshal(map[string]any{"delay": 6})
	if err := b.Publish(ctx, broker.Message{Topic: "cmd/reboot", Data: raw, Codec: protocol.Msgpack}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{js, mpc} {
		for _, want := range []uint64{5, 6} {
			f := c.expect("msg")
			d, _ := frame(f["data"].(map[string]any)).num("delay")
			if f["topic"] != "cmd/reboot" || d != want {
				t.Fatalf("got %v", f)
			}
		}
	}
	for _, bad := range []broker.Message{
		{Topic: "cmd/+", Data: []byte(`1`)},
		{Topic: "", Data: []byte(`1`)},
		{Topic: "a//b", Data: []byte(`1`)},
	} {
		if err := b.Publish(ctx, bad); !errors.Is(err, broker.ErrBadTopic) {
			t.Fatalf("Publish(%q): %v, want ErrBadTopic", bad.Topic, err)
		}
	}
	for _, bad := range []broker.Message{
		{Topic: "cmd/x", Data: []byte(`{"unterminated":`)},
		{Topic: "cmd/x", Data: nil},
		{Topic: "cmd/x", Data: []byte{0xc1}, Codec: protocol.Msgpack},
		{Topic: "cmd/x", Data: []byte(`1`), Codec: 7},
	} {
		if err := b.Publish(ctx, bad); !errors.Is(err, broker.ErrBadData) {
			t.Fatalf("Publish(%q): %v, want ErrBadData", bad.Data, err)
		}
	}
	if _, err := b.Subscribe("a/#/b", func(*broker.Message) error { return nil }); !errors.Is(err, broker.ErrBadTopic) {
		t.Fatalf("Subscribe bad filter: %v", err)
	}
	js.noFrame()
}

func TestHandlerPanicIsContained(t *testing.T) {
	b, _ := startBroker(t, broker.Options{})
	got := make(chan string, 10)
	_, err := b.Subscribe("p", func(m *broker.Message) error {
		if string(m.Data) == `"boom"` {
			panic("handler bug")
		}
		got <- string(m.Data)
		return errors.New("returned errors are logged, not fatal")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{`"boom"`, `"after"`} {
		if err := b.Publish(context.Background(), broker.Message{Topic: "p", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	if v := <-got; v != `"after"` {
		t.Fatalf("got %s", v)
	}
	if st := b.Stats(); st.Panics != 1 {
		t.Fatalf("Panics = %d, want 1", st.Panics)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, tc := range []struct {
		o     broker.Options
		field string
	}{
		{broker.Options{MaxFrameBytes: 10}, "MaxFrameBytes"},
		{broker.Options{QueueBytes: 10}, "QueueBytes"},
		{broker.Options{SlowConsumer: "explode"}, "SlowConsumer"},
		{broker.Options{PingInterval: 10e9, IdleTimeout: 5e9}, "IdleTimeout"},
		{broker.Options{ReadBufferSize: 1}, "ReadBufferSize"},
	} {
		_, err := broker.New(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Fatalf("New(%+v) = %v, want an error naming %s", tc.o, err, tc.field)
		}
	}
	if _, err := broker.ParsePolicy("drop"); err != nil {
		t.Fatal(err)
	}
}
