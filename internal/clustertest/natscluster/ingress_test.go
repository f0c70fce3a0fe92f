package natscluster_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/clustertest"
	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"
)

// wsSub is a browser-like JSON subscriber: a bare WebSocket that keeps
// every frame as it arrived.
type wsSub struct {
	t      testing.TB
	conn   *gws.Conn
	mu     sync.Mutex
	frames []string
	closed chan struct{}
	err    error
}

func dialSub(t testing.TB, url string) *wsSub {
	t.Helper()
	s := &wsSub{t: t, closed: make(chan struct{})}
	h := map[string][]string{"Sec-WebSocket-Protocol": {"ferry.v1.json"}}
	conn, _, err := gws.NewClient(s, &gws.ClientOption{Addr: url, RequestHeader: h, ReadMaxPayloadSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() {
		_ = conn.NetConn().Close()
		<-s.closed
	})
	return s
}

func (s *wsSub) OnOpen(*gws.Conn)               {}
func (s *wsSub) OnPing(c *gws.Conn, p []byte)   { _ = c.WritePong(p) }
func (s *wsSub) OnPong(*gws.Conn, []byte)       {}
func (s *wsSub) OnClose(_ *gws.Conn, err error) { s.err = err; close(s.closed) }
func (s *wsSub) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	s.mu.Lock()
	s.frames = append(s.frames, string(m.Bytes()))
	s.mu.Unlock()
}

func (s *wsSub) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.frames...)
}

func (s *wsSub) send(frame string) {
	s.t.Helper()
	if err := s.conn.WriteString(frame); err != nil {
		s.t.Fatal(err)
	}
}

// has reports whether a frame contains want.
func (s *wsSub) has(want string) bool {
	for _, f := range s.snapshot() {
		if strings.Contains(f, want) {
			return true
		}
	}
	return false
}

// msgs checks that every frame is valid UTF-8 and one JSON value, that
// none is an err frame, and returns the msg frames' topic and data.
func (s *wsSub) msgs() []string {
	s.t.Helper()
	var out []string
	for _, f := range s.snapshot() {
		if !utf8.ValidString(f) || !json.Valid([]byte(f)) {
			s.t.Fatalf("subscriber got a frame that is not valid UTF-8 JSON: %q", f)
		}
		var v struct {
			Op    string
			Topic string
			Data  json.RawMessage
		}
		if err := json.Unmarshal([]byte(f), &v); err != nil {
			s.t.Fatal(err)
		}
		switch v.Op {
		case "msg":
			out = append(out, v.Topic+" "+string(v.Data))
		case "ack":
		default:
			s.t.Fatalf("subscriber got %s", f)
		}
	}
	return out
}

func (s *wsSub) open() bool {
	select {
	case <-s.closed:
		return false
	default:
		return true
	}
}

// intruder is a plain NATS client publishing on ferry's subjects.
type intruder struct {
	t   testing.TB
	nc  *nats.Conn
	seq int
}

func newIntruder(t testing.TB, url string) *intruder {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &intruder{t: t, nc: nc}
}

// publish sends data on subject; codec "" sends it without ferry's
// headers, as any NATS client would.
func (in *intruder) publish(subject, codec string, data []byte, hdr ...string) {
	in.t.Helper()
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if codec != "" {
		in.seq++
		m.Header.Set("Ferry-Origin", "intruder")
		m.Header.Set("Ferry-Seq", strconv.Itoa(in.seq))
		m.Header.Set("Ferry-Codec", codec)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		m.Header.Set(hdr[i], hdr[i+1])
	}
	if err := in.nc.PublishMsg(m); err != nil {
		in.t.Fatal(err)
	}
}

func enc(level string) string { return "~" + base64.RawURLEncoding.EncodeToString([]byte(level)) }

// TestClusterIngressFromNATS: a NATS client outside ferry publishes garbage
// on ferry's subjects. A JSON WebSocket subscriber on a node gets only the
// valid messages, every frame valid UTF-8 JSON, and stays connected; the
// garbage is counted, retained garbage is not stored.
func TestClusterIngressFromNATS(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	n1 := startNode(t, natsURL(s))
	n2 := startNodeWith(t, broker.Options{MaxFrameBytes: 1024}, natsURL(s))
	sub := dialSub(t, n2.url)
	sub.send(`{"op":"sub","topic":"g/#","id":1}`)
	eventually(t, "sub ack", func() bool { return sub.has(`"op":"ack","id":1`) })
	pub := connect(t, n1.url)
	eventually(t, "the subscriber reachable from node 1", func() bool {
		_ = pub.Publish(context.Background(), "g/probe", "probe")
		return sub.has(`"topic":"g/probe"`)
	})

	in := newIntruder(t, natsURL(s))
	garbage := []struct {
		subject, codec string
		data           []byte
	}{
		{"ferry.g.x", "j", []byte(`{broken`)},
		{"ferry.g.x", "j", []byte("\"\xff\xfe\"")}, // invalid UTF-8
		{"ferry.g.x", "j", []byte(`1 2`)},
		{"ferry.g.x", "j", nil},
		{"ferry.g.x", "m", []byte{0x92, 0x01}},                            // array of 2 holding one value
		{"ferry.g.x", "m", []byte{0x01, 0x02}},                            // two values
		{"ferry.g.x", "m", []byte{0xc1}},                                  // never used
		{"ferry.g.x", "j", []byte(`"` + strings.Repeat("x", 2000) + `"`)}, // over node 2's MaxFrameBytes
		{"ferry.g." + enc("+"), "j", []byte(`1`)},
		{"ferry.g." + enc("#"), "j", []byte(`1`)},
		{"ferry.g." + enc("a\x00b"), "j", []byte(`1`)},
		{"ferry.g." + enc("\xff"), "j", []byte(`1`)},
		{"ferry.g.~", "j", []byte(`1`)},                           // empty level
		{"ferry.g." + strings.Repeat("a", 300), "j", []byte(`1`)}, // topic over 256 bytes
	}
	for i, g := range garbage {
		in.publish(g.subject, g.codec, g.data)
		// valid messages in between, from a ferry client and from NATS
		if err := pub.Publish(context.Background(), "g/ok", i); err != nil {
			t.Fatal(err)
		}
	}
	// not ferry's: skipped by natscluster before they reach the broker
	in.publish("ferry.g.x", "", []byte(`{broken`))
	in.publish("ferry.g.~!!", "j", []byte(`1`))
	// a valid one from NATS is delivered: whoever may publish on ferry's
	// subjects counts as a node
	in.publish("ferry.g.nats", "j", []byte(`"from nats"`))
	// retained values for every node
	in.publish("ferry_sys.retained", "", []byte(`{broken`), "Ferry-Codec", "j", "Ferry-Topic", "g/r1")
	in.publish("ferry_sys.retained", "", []byte(`1`), "Ferry-Codec", "j", "Ferry-Topic", "g/+")
	in.publish("ferry_sys.retained", "", []byte("\"\xff\""), "Ferry-Codec", "j", "Ferry-Topic", "g/r2")
	in.publish("ferry_sys.retained", "", []byte(`1`), "Ferry-Codec", "j") // no topic
	in.publish("ferry_sys.retained", "", []byte(`"kept"`), "Ferry-Codec", "j", "Ferry-Topic", "g/kept")
	if err := in.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// the intruder's messages are at the NATS server: an end marker
	// published now reaches node 2 after them
	if err := pub.Publish(context.Background(), "g/end", "end"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the end marker", func() bool { return sub.has(`"topic":"g/end"`) })

	var ok []int
	var fromNATS int
	for _, m := range sub.msgs() {
		topic, data, _ := strings.Cut(m, " ")
		switch topic {
		case "g/probe", "g/end":
		case "g/ok":
			v, err := strconv.Atoi(data)
			if err != nil {
				t.Fatalf("g/ok carried %s", data)
			}
			ok = append(ok, v)
		case "g/nats":
			fromNATS++
		default:
			t.Fatalf("subscriber got %s", m)
		}
	}
	exactlyInOrder(t, "valid messages from node 1", ok, len(garbage))
	if fromNATS != 1 {
		t.Fatalf("%d valid messages from the NATS client, want 1", fromNATS)
	}
	if !sub.open() {
		t.Fatalf("subscriber disconnected: %v", sub.err)
	}
	const retainedGarbage = 4
	if got, want := n2.b.Stats().ClusterRejected, uint64(len(garbage)+retainedGarbage); got != want {
		t.Fatalf("node 2 rejected %d, want %d", got, want)
	}
	eventually(t, "node 1 saw the retained values", func() bool { return n1.b.Stats().ClusterRejected == retainedGarbage })
	for i, n := range []*node{n1, n2} {
		if st := n.b.Stats(); st.Retained != 1 {
			t.Fatalf("node %d retains %d messages, want 1 (g/kept)", i+1, st.Retained)
		}
	}
	// the connection still works, and its retained messages are the valid one
	sub.send(`{"op":"sub","topic":"g/+","id":2}`)
	eventually(t, "the retained value", func() bool { return sub.has(`"data":"kept"`) && sub.has(`"op":"ack","id":2`) })
	sub.msgs() // still valid JSON throughout
}

// TestSnapshotIngress: the retained values a starting node loads from
// another node's snapshot are checked too.
func TestSnapshotIngress(t *testing.T) {
	s := clustertest.StartNATS(t, clustertest.NATSOptions{})
	in := newIntruder(t, natsURL(s))
	entries := [][3][]byte{
		{[]byte("g/a"), []byte("j"), []byte(`{broken`)},
		{[]byte("g/+"), []byte("j"), []byte(`1`)},
		{[]byte("g/b"), []byte("j"), []byte("\"\xff\"")},
		{[]byte("g/ok"), []byte("j"), []byte(`"ok"`)},
		{[]byte("g/m"), []byte("m"), []byte{0xc1}},
		{[]byte("g/mok"), []byte("m"), []byte{0x05}},
		{[]byte(""), []byte("j"), []byte(`1`)},
	}
	const rejected = 5
	answer, err := msgpack.Marshal(entries)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.nc.QueueSubscribe("ferry_sys.snapshot", "snapshot", func(req *nats.Msg) {
		m := &nats.Msg{Subject: req.Reply, Data: answer, Header: nats.Header{}}
		m.Header.Set("Ferry-End", "1")
		_ = in.nc.PublishMsg(m)
	}); err != nil {
		t.Fatal(err)
	}
	if err := in.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, natsURL(s))
	if st := n.b.Stats(); st.Retained != 2 || st.ClusterRejected != rejected {
		t.Fatalf("node loaded %d retained values and rejected %d, want 2 and %d", st.Retained, st.ClusterRejected, rejected)
	}
	sub := dialSub(t, n.url)
	sub.send(`{"op":"sub","topic":"g/#","id":1}`)
	eventually(t, "retained values", func() bool { return len(sub.msgs()) == 2 })
	if got := strings.Join(sub.msgs(), "|"); got != `g/mok 5|g/ok "ok"` {
		t.Fatalf("retained values delivered: %s", got)
	}
}
