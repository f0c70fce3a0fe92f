package broker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// TestClusterIngressChecked: what a Cluster hands the broker is checked as
// a client's publish is; only valid messages and retained values reach
// subscribers and the retained store, the others are counted.
func TestClusterIngressChecked(t *testing.T) {
	b := quietBroker(t, Options{MaxFrameBytes: 1024, MaxTopicBytes: 32})
	defer b.Shutdown(context.Background())
	var mu sync.Mutex
	var got []string
	s, err := b.Subscribe("#", func(m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.Topic+" "+string(m.Data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	n := clusterNode{b}
	j, mp := protocol.JSON, protocol.Msgpack
	invalid := []ClusterMessage{
		{Topic: "t/a", Codec: j, Data: []byte(`{broken`)},
		{Topic: "t/a", Codec: j, Data: []byte("\"\xff\"")}, // invalid UTF-8
		{Topic: "t/a", Codec: j, Data: []byte(`1 2`)},
		{Topic: "t/a", Codec: j, Data: nil},
		{Topic: "t/a", Codec: mp, Data: []byte{0x92, 0x01}},         // array of 2 holding 1
		{Topic: "t/a", Codec: mp, Data: []byte{0x01, 0x02}},         // two values
		{Topic: "t/a", Codec: protocol.Codec(9), Data: []byte(`1`)}, // no such codec
		{Topic: "t/a", Codec: j, Data: []byte(`"` + strings.Repeat("x", 1100) + `"`)},
		{Topic: "t/+", Codec: j, Data: []byte(`1`)},
		{Topic: "t/#", Codec: j, Data: []byte(`1`)},
		{Topic: "t/a\x00", Codec: j, Data: []byte(`1`)},
		{Topic: "t/\xff", Codec: j, Data: []byte(`1`)},
		{Topic: "", Codec: j, Data: []byte(`1`)},
		{Topic: "t//a", Codec: j, Data: []byte(`1`)},
		{Topic: strings.Repeat("t", 33), Codec: j, Data: []byte(`1`)},
	}
	valid := []ClusterMessage{
		{Topic: "t/a", Codec: j, Data: []byte(`{"ok":1}`)},
		{Topic: "t/b", Codec: mp, Data: []byte{0x02}},
		{Topic: "$SYS/x", Codec: j, Data: []byte(`3`)}, // another node's broker publishes '$' topics
	}
	for _, m := range invalid {
		n.Deliver(m)
		n.DeliverGroup("#", "g", m)
		n.SetRetained(m)
	}
	for _, m := range valid {
		n.Deliver(m)
		n.SetRetained(m)
	}
	want := []string{`t/a {"ok":1}`, "t/b \x02"}
	// a last valid message: once it is in, everything before it is
	n.Deliver(ClusterMessage{Topic: "t/end", Codec: j, Data: []byte(`0`)})
	want = append(want, "t/end 0")
	deliveries := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
	for deadline := time.Now().Add(10 * time.Second); len(deliveries()) < len(want) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if d := deliveries(); strings.Join(d, "|") != strings.Join(want, "|") {
		t.Fatalf("deliveries: %q, want %q", d, want)
	}
	st := b.Stats()
	if want := uint64(3 * len(invalid)); st.ClusterRejected != want {
		t.Fatalf("ClusterRejected = %d, want %d", st.ClusterRejected, want)
	}
	if st.Retained != len(valid) {
		t.Fatalf("%d retained messages, want %d", st.Retained, len(valid))
	}
}
