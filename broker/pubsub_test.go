package broker_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/lxzan/gws"
	"github.com/vmihailenco/msgpack/v5"
)

var codecs = []struct {
	name     string
	protocol []string
}{
	{"json", []string{"ferry.v1.json"}},
	{"msgpack", []string{"ferry.v1.msgpack"}},
}

func TestSubprotocolNegotiation(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	cases := []struct {
		offer      []string
		wantProto  string
		wantBinary bool
	}{
		{nil, "", false},
		{[]string{"ferry.v1.json"}, "ferry.v1.json", false},
		{[]string{"ferry.v1.msgpack"}, "ferry.v1.msgpack", true},
		{[]string{"ferry.v1.msgpack", "ferry.v1.json"}, "ferry.v1.msgpack", true},
		{[]string{"ferry.v1.json", "ferry.v1.msgpack"}, "ferry.v1.json", false},
		{[]string{"mqtt", "ferry.v1.msgpack"}, "ferry.v1.msgpack", true},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.offer, ","), func(t *testing.T) {
			c := dial(t, url, tc.offer...)
			if got := c.conn.SubProtocol(); got != tc.wantProto {
				t.Fatalf("negotiated %q, want %q", got, tc.wantProto)
			}
			c.send(map[string]any{"op": "ping", "id": 1})
			r := c.next()
			if (r.opcode == gws.OpcodeBinary) != tc.wantBinary {
				t.Fatalf("reply opcode %v, want binary=%v", r.opcode, tc.wantBinary)
			}
			if r.f.op() != "pong" {
				t.Fatalf("got %v", r.f)
			}
		})
	}
}

func TestHTTPRefusals(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	httpURL := "http" + strings.TrimPrefix(url, "ws")

	_, resp, err := tryDial(t, url, dialOpts{protocols: []string{"mqtt", "wamp"}})
	if err == nil {
		t.Fatal("foreign subprotocols were accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign subprotocols: response %v, want 400", resp)
	}

	// the same with a plain HTTP client, to read the reason
	req, _ := http.NewRequest("GET", httpURL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "mqtt")
	expectStatus(t, req, http.StatusBadRequest, "unsupported subprotocol mqtt")

	plain, _ := http.NewRequest("GET", httpURL, nil)
	expectStatus(t, plain, http.StatusUpgradeRequired, "speaks WebSocket")

	post, _ := http.NewRequest("POST", httpURL, strings.NewReader("x"))
	expectStatus(t, post, http.StatusMethodNotAllowed, "requires GET")
}

func expectStatus(t *testing.T, req *http.Request, status int, reason string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status || !strings.Contains(string(body), reason) {
		t.Fatalf("%s %s: got %d %q, want %d containing %q", req.Method, req.URL, resp.StatusCode, body, status, reason)
	}
}

func TestPubSubEachCodec(t *testing.T) {
	for _, cd := range codecs {
		t.Run(cd.name, func(t *testing.T) {
			_, url := startBroker(t, broker.Options{})
			sub := dial(t, url, cd.protocol...)
			pub := dial(t, url, cd.protocol...)
			sub.mustAck(map[string]any{"op": "sub", "topic": "telemetry/+/temp"})
			data := map[string]any{"celsius": 21.5, "ok": true, "tags": []any{"a", "b"}}
			pub.mustAck(map[string]any{"op": "pub", "topic": "telemetry/dev-1/temp", "data": data})
			f := sub.expect("msg")
			if f["topic"] != "telemetry/dev-1/temp" {
				t.Fatalf("topic %v", f["topic"])
			}
			got := fmt.Sprint(f["data"])
			if got != fmt.Sprint(data) {
				t.Fatalf("data %s, want %s", got, fmt.Sprint(data))
			}
			for _, k := range []string{"mid", "redelivered", "retained", "id"} {
				if _, ok := f[k]; ok {
					t.Fatalf("plain live delivery carries %q: %v", k, f)
				}
			}
			// no ack for a request without id, and none was sent to the subscriber
			pub.send(map[string]any{"op": "pub", "topic": "telemetry/dev-2/temp", "data": 1})
			pub.noFrame()
			if f := sub.expect("msg"); f["topic"] != "telemetry/dev-2/temp" {
				t.Fatalf("got %v", f)
			}
			sub.noFrame()
		})
	}
}

func TestCrossCodec(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	js := dial(t, url, "ferry.v1.json")
	mp := dial(t, url, "ferry.v1.msgpack")
	js.mustAck(map[string]any{"op": "sub", "topic": "x/#"})
	mp.mustAck(map[string]any{"op": "sub", "topic": "x/#"})

	// msgpack publisher with bin, ints, nested map: JSON gets base64 for bin
	bin := []byte{0, 1, 2, 250, 251, 252}
	mp.mustAck(map[string]any{"op": "pub", "topic": "x/bin", "data": map[string]any{"raw": bin, "n": -5, "big": uint64(1) << 63}})
	jf := js.expect("msg")
	d := jf["data"].(map[string]any)
	if d["raw"] != base64.StdEncoding.EncodeToString(bin) || d["n"] != float64(-5) || d["big"] != float64(1<<63) {
		t.Fatalf("json subscriber got %v", jf)
	}
	mf := mp.expect("msg")
	if md := mf["data"].(map[string]any); string(md["raw"].([]byte)) != string(bin) {
		t.Fatalf("msgpack subscriber got %v", mf)
	}

	// JSON publisher: msgpack subscriber gets native values
	js.mustAck(map[string]any{"op": "pub", "topic": "x/json", "data": map[string]any{"s": "héllo", "i": 42, "f": 1.5, "null": nil, "list": []any{1, "two"}}})
	js.expect("msg")
	r := mp.next()
	if r.opcode != gws.OpcodeBinary {
		t.Fatal("msgpack subscriber got a text frame")
	}
	md := r.f["data"].(map[string]any)
	var i int
	if err := msgpackConvert(md["i"], &i); err != nil || i != 42 || md["s"] != "héllo" || md["f"] != 1.5 || md["null"] != nil {
		t.Fatalf("msgpack subscriber got %v", r.f)
	}

	// a text (JSON) frame on a msgpack connection is accepted; replies stay msgpack
	mp.send(`{"op":"pub","topic":"x/text","data":"hi","id":9}`)
	var sawAck, sawMsg bool
	for !(sawAck && sawMsg) {
		r := mp.next()
		if r.opcode != gws.OpcodeBinary {
			t.Fatalf("msgpack connection got a text frame %s", r.raw)
		}
		sawAck = sawAck || r.f.op() == "ack"
		sawMsg = sawMsg || (r.f.op() == "msg" && r.f["data"] == "hi")
	}
	if f := js.expect("msg"); f["data"] != "hi" {
		t.Fatalf("json subscriber got %v", f)
	}
}

func TestMsgpackOnlyValuesReachJSON(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	js := dial(t, url)
	mp := dial(t, url, "ferry.v1.msgpack")
	js.mustAck(map[string]any{"op": "sub", "topic": "v"})
	// a map with integer keys and an extension value
	enc, err := msgpack.Marshal(map[int]any{1: "one", 2: true})
	if err != nil {
		t.Fatal(err)
	}
	ext := []byte{0xd4, 0x05, 0x07} // fixext1, type 5, one byte
	frameBytes := []byte{0x83, 0xa2, 'o', 'p', 0xa3, 'p', 'u', 'b', 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'v', 0xa4, 'd', 'a', 't', 'a', 0x92}
	frameBytes = append(append(frameBytes, enc...), ext...)
	mp.send(frameBytes)
	f := js.expect("msg")
	want := `[map[1:one 2:true] map[$ext:5 data:Bw==]]`
	if got := fmt.Sprint(f["data"]); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestWildcardsAndSystemTopics(t *testing.T) {
	b, url := startBroker(t, broker.Options{})
	c := dial(t, url)
	c.mustAck(map[string]any{"op": "sub", "topic": "a/+/c"})
	c.mustAck(map[string]any{"op": "sub", "topic": "a/#"}) // overlaps: still one delivery
	all := dial(t, url)
	all.mustAck(map[string]any{"op": "sub", "topic": "#"})
	sys := dial(t, url)
	sys.mustAck(map[string]any{"op": "sub", "topic": "$SYS/#"})

	pub := dial(t, url)
	for _, topic := range []string{"a/b/c", "a", "a/x/y/z"} {
		pub.mustAck(map[string]any{"op": "pub", "topic": topic, "data": topic})
	}
	for _, want := range []string{"a/b/c", "a", "a/x/y/z"} {
		if f := c.expect("msg"); f["topic"] != want {
			t.Fatalf("got %v, want topic %s", f, want)
		}
		if f := all.expect("msg"); f["topic"] != want {
			t.Fatalf("# got %v, want topic %s", f, want)
		}
	}
	c.noFrame() // a/b/c matched two filters but came once

	// clients may not publish to $ topics
	pub.send(map[string]any{"op": "pub", "topic": "$SYS/x", "data": 1, "id": 5})
	if f := pub.expectErr("forbidden"); f["id"] != float64(5) {
		t.Fatalf("err without the request id: %v", f)
	}
	// the application may; '#' does not match it, '$SYS/#' does
	if err := b.Publish(t.Context(), broker.Message{Topic: "$SYS/uptime", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if f := sys.expect("msg"); f["topic"] != "$SYS/uptime" {
		t.Fatalf("got %v", f)
	}
	all.noFrame()
}

func TestUnsubscribeAndAcks(t *testing.T) {
	for _, cd := range codecs {
		t.Run(cd.name, func(t *testing.T) {
			_, url := startBroker(t, broker.Options{})
			c := dial(t, url, cd.protocol...)
			c.mustAck(map[string]any{"op": "sub", "topic": "t"})
			c.mustAck(map[string]any{"op": "sub", "topic": "t"}) // idempotent
			c.mustAck(map[string]any{"op": "pub", "topic": "t", "data": 1})
			c.expect("msg")
			c.noFrame() // one subscription, one delivery
			c.mustAck(map[string]any{"op": "unsub", "topic": "t"})
			c.mustAck(map[string]any{"op": "pub", "topic": "t", "data": 2})
			c.noFrame()
			f := c.request(map[string]any{"op": "unsub", "topic": "t"}, 77)
			if f.op() != "err" || f["code"] != "not_subscribed" {
				t.Fatalf("unsub twice: %v", f)
			}
			if id, _ := f.num("id"); id != 77 {
				t.Fatalf("reply id %v", f["id"])
			}
			// ping with and without id
			c.send(map[string]any{"op": "ping"})
			if f := c.expect("pong"); f["id"] != nil {
				t.Fatalf("pong for a ping without id carries an id: %v", f)
			}
			c.alive()
		})
	}
}

func TestOrderPerPublisher(t *testing.T) {
	_, url := startBroker(t, broker.Options{})
	subs := []*client{dial(t, url), dial(t, url, "ferry.v1.msgpack")}
	for _, s := range subs {
		s.mustAck(map[string]any{"op": "sub", "topic": "seq/#"})
	}
	pubs := []*client{dial(t, url), dial(t, url, "ferry.v1.msgpack")}
	const n = 2000
	done := make(chan struct{})
	for p, pc := range pubs {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < n; i++ {
				pc.send(map[string]any{"op": "pub", "topic": fmt.Sprintf("seq/%d", p), "data": i})
			}
		}()
	}
	<-done
	<-done
	for _, s := range subs {
		next := map[string]uint64{}
		for k := 0; k < 2*n; k++ {
			f := s.expect("msg")
			topic := f["topic"].(string)
			v, _ := f.num("data")
			if v != next[topic] {
				t.Fatalf("%s: got %d, want %d", topic, v, next[topic])
			}
			next[topic]++
		}
	}
}

func TestLargeMessages(t *testing.T) {
	// frame lengths on both sides of the 16-bit and 64-bit header forms
	_, url := startBroker(t, broker.Options{})
	js := dial(t, url)
	mpc := dial(t, url, "ferry.v1.msgpack")
	for _, c := range []*client{js, mpc} {
		c.mustAck(map[string]any{"op": "sub", "topic": "big"})
	}
	pub := dial(t, url)
	for _, n := range []int{100, 125, 126, 65000, 65535, 65536, 70000, 900000} {
		pub.mustAck(map[string]any{"op": "pub", "topic": "big", "data": strings.Repeat("d", n)})
		for _, c := range []*client{js, mpc} {
			if f := c.expect("msg"); len(f["data"].(string)) != n {
				t.Fatalf("size %d: got %d bytes", n, len(f["data"].(string)))
			}
		}
	}
}

func TestTLS(t *testing.T) {
	// wss: the broker behind net/http's TLS, batches written as one record
	b, err := broker.New(broker.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(b)
	srv.StartTLS()
	defer func() {
		_ = b.Shutdown(context.Background())
		srv.Close()
	}()
	url := "wss://" + srv.Listener.Addr().String() + "/ws"
	tlsDial := func() *client {
		c := &client{t: t, frames: make(chan received, 10000), closed: make(chan struct{})}
		conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, TlsConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		c.conn = conn
		go conn.ReadLoop()
		t.Cleanup(func() { _ = conn.NetConn().Close(); <-c.closed })
		return c
	}
	sub := tlsDial()
	sub.mustAck(map[string]any{"op": "sub", "topic": "s"})
	pub := tlsDial()
	pub.mustAck(map[string]any{"op": "pub", "topic": "s", "data": 0})
	// in-process publishes outpace the writer: frames queue up and go out
	// in batches
	for i := 1; i < 500; i++ {
		if err := b.Publish(context.Background(), broker.Message{Topic: "s", Data: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 500; i++ {
		if v, _ := sub.expect("msg").num("data"); v != uint64(i) {
			t.Fatalf("got %d, want %d", v, i)
		}
	}
}
