package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/lxzan/gws"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for a frame or a condition.
const waitTimeout = 10 * time.Second

// testLogger writes the broker's logs to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startBroker runs a broker on 127.0.0.1 at /ws and returns it with its
// WebSocket URL. It is shut down when the test ends.
func startBroker(t testing.TB, opts broker.Options) (*broker.Broker, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	addr, srv := testutil.Serve(t, mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return b, "ws://" + addr + "/ws"
}

// frame is a decoded frame received by a test client.
type frame map[string]any

func (f frame) op() string { s, _ := f["op"].(string); return s }

// num returns a numeric field as a uint64 (JSON numbers arrive as float64,
// msgpack ones as integers of several widths).
func (f frame) num(key string) (uint64, bool) {
	switch v := f[key].(type) {
	case float64:
		return uint64(v), true
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, uint:
		var n uint64
		_ = msgpackConvert(v, &n)
		return n, true
	}
	return 0, false
}

func msgpackConvert(in, out any) error {
	b, err := msgpack.Marshal(in)
	if err != nil {
		return err
	}
	return msgpack.Unmarshal(b, out)
}

// closeInfo is how the broker closed a client.
type closeInfo struct {
	code   uint16
	reason string
}

// client is a test WebSocket client built on gws.
type client struct {
	t       testing.TB
	conn    *gws.Conn
	binary  bool // send msgpack in binary frames
	frames  chan received
	closed  chan struct{}
	closeMu sync.Mutex
	close   closeInfo
	noPong  bool
	onPing  func()
	pending []received // frames request skipped over, read first by next
}

type received struct {
	opcode gws.Opcode
	raw    []byte
	f      frame
}

type dialOpts struct {
	protocols []string // offered subprotocols; nil offers none
	noPong    bool     // do not answer WebSocket pings
	onPing    func()   // called on each WebSocket ping
}

func dial(t testing.TB, url string, protocols ...string) *client {
	return dialWith(t, url, dialOpts{protocols: protocols})
}

func dialWith(t testing.TB, url string, o dialOpts) *client {
	t.Helper()
	c, resp, err := tryDial(t, url, o)
	if err != nil {
		body := ""
		if resp != nil && resp.Body != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		t.Fatalf("dial %s: %v %s", url, err, body)
	}
	return c
}

func tryDial(t testing.TB, url string, o dialOpts) (*client, *http.Response, error) {
	c := &client{t: t, frames: make(chan received, 100000), closed: make(chan struct{}), noPong: o.noPong, onPing: o.onPing}
	h := http.Header{}
	if len(o.protocols) > 0 {
		h.Set("Sec-WebSocket-Protocol", strings.Join(o.protocols, ", "))
	}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{
		Addr: url, RequestHeader: h, ReadMaxPayloadSize: 64 << 20, CheckUtf8Enabled: true,
	})
	if err != nil {
		return nil, resp, err
	}
	c.conn = conn
	c.binary = conn.SubProtocol() == "ferry.v1.msgpack"
	go conn.ReadLoop()
	t.Cleanup(func() {
		_ = conn.NetConn().Close()
		<-c.closed
	})
	return c, resp, nil
}

func (c *client) OnOpen(*gws.Conn) {}
func (c *client) OnClose(_ *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		c.closeMu.Lock()
		c.close = closeInfo{ce.Code, string(ce.Reason)}
		c.closeMu.Unlock()
	}
	close(c.closed)
}
func (c *client) OnPing(socket *gws.Conn, p []byte) {
	if c.onPing != nil {
		c.onPing()
	}
	if !c.noPong {
		_ = socket.WritePong(p)
	}
}
func (c *client) OnPong(*gws.Conn, []byte) {}
func (c *client) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	raw := append([]byte(nil), m.Bytes()...)
	r := received{opcode: m.Opcode, raw: raw}
	var err error
	if m.Opcode == gws.OpcodeBinary {
		dec := msgpack.NewDecoder(bytes.NewReader(raw))
		var v map[string]any
		err = dec.Decode(&v)
		r.f = v
	} else {
		err = json.Unmarshal(raw, &r.f)
	}
	if err != nil {
		c.t.Errorf("client: undecodable frame %q: %v", raw, err)
	}
	c.frames <- r
}

// send writes a frame: v is marshalled with the client's codec, or sent as
// is when it is a string (text) or []byte (binary).
func (c *client) send(v any) {
	c.t.Helper()
	var err error
	switch x := v.(type) {
	case string:
		err = c.conn.WriteMessage(gws.OpcodeText, []byte(x))
	case []byte:
		err = c.conn.WriteMessage(gws.OpcodeBinary, x)
	default:
		if c.binary {
			b, merr := msgpack.Marshal(v)
			if merr != nil {
				c.t.Fatal(merr)
			}
			err = c.conn.WriteMessage(gws.OpcodeBinary, b)
		} else {
			b, merr := json.Marshal(v)
			if merr != nil {
				c.t.Fatal(merr)
			}
			err = c.conn.WriteMessage(gws.OpcodeText, b)
		}
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next frame, failing the test after waitTimeout.
func (c *client) next() received {
	c.t.Helper()
	if len(c.pending) > 0 {
		r := c.pending[0]
		c.pending = c.pending[1:]
		return r
	}
	select {
	case r := <-c.frames:
		return r
	case <-time.After(waitTimeout):
		c.t.Fatalf("no frame within %v", waitTimeout)
	}
	return received{}
}

// expect returns the next frame and checks its op.
func (c *client) expect(op string) frame {
	c.t.Helper()
	r := c.next()
	if r.f.op() != op {
		c.t.Fatalf("got %s, want op %q", r.raw, op)
	}
	return r.f
}

// request sends a frame with an id and returns the reply with that id;
// other frames stay for next.
func (c *client) request(v map[string]any, id uint64) frame {
	c.t.Helper()
	v["id"] = id
	c.send(v)
	var skipped []received
	defer func() { c.pending = append(skipped, c.pending...) }()
	for {
		r := c.next()
		if n, ok := r.f.num("id"); ok && n == id && r.f.op() != "msg" {
			return r.f
		}
		skipped = append(skipped, r)
	}
}

// mustAck sends v with an id and fails unless the reply is an ack.
func (c *client) mustAck(v map[string]any) {
	c.t.Helper()
	if f := c.request(v, 1<<40); f.op() != "ack" {
		c.t.Fatalf("%v: got %v, want ack", v, f)
	}
}

// expectErr returns the next frame, which must be an err with that code.
func (c *client) expectErr(code string) frame {
	c.t.Helper()
	f := c.expect("err")
	if f["code"] != code {
		c.t.Fatalf("err code %v (reason %q), want %q", f["code"], f["reason"], code)
	}
	if r, _ := f["reason"].(string); r == "" {
		c.t.Fatalf("err without a reason: %v", f)
	}
	return f
}

// alive checks that the connection still answers a ping.
func (c *client) alive() {
	c.t.Helper()
	if f := c.request(map[string]any{"op": "ping"}, 424242); f.op() != "pong" {
		c.t.Fatalf("ping: got %v, want pong", f)
	}
}

// waitClosed waits for the broker to close the connection and returns the
// close code and reason.
func (c *client) waitClosed() closeInfo {
	c.t.Helper()
	select {
	case <-c.closed:
	case <-time.After(waitTimeout):
		c.t.Fatalf("connection not closed within %v", waitTimeout)
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.close
}

// noFrame checks that no frame is pending after a round trip to the broker
// (the ping's pong comes after anything sent before it).
func (c *client) noFrame() {
	c.t.Helper()
	c.send(map[string]any{"op": "ping", "id": 777})
	r := c.next()
	if n, _ := r.f.num("id"); r.f.op() != "pong" || n != 777 {
		c.t.Fatalf("unexpected frame %s", r.raw)
	}
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, waitTimeout, 5*time.Millisecond, what, cond)
}

// rawClient is a WebSocket client on a bare TCP connection, for tests that
// need a peer which stops reading.
type rawClient struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, url, protocol string) *rawClient {
	t.Helper()
	hostPath := strings.TrimPrefix(url, "ws://")
	host, path, _ := strings.Cut(hostPath, "/")
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	req := "GET /" + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	if protocol != "" {
		req += "Sec-WebSocket-Protocol: " + protocol + "\r\n"
	}
	if _, err := nc.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("raw handshake: %v %v", resp, err)
	}
	return &rawClient{t: t, nc: nc, br: br}
}

// send writes one masked frame with the given opcode.
func (r *rawClient) send(opcode byte, payload []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(maskedFrame(opcode, payload)); err != nil {
		r.t.Fatalf("raw send: %v", err)
	}
}

// maskedFrame is one client-to-server WebSocket frame.
func maskedFrame(opcode byte, payload []byte) []byte {
	return wsframe.AppendMasked(nil, opcode, 0x04030201, payload)
}

// read returns the next frame's opcode and payload (io.EOF at the end).
func (r *rawClient) read() (byte, []byte, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(b[0])<<8 | uint64(b[1])
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = 0
		for _, c := range b {
			n = n<<8 | uint64(c)
		}
	}
	p := make([]byte, n)
	_, err := io.ReadFull(r.br, p)
	return h[0] & 0x0f, p, err
}
