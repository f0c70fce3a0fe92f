package load

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/internal/wsframe"
	"github.com/ferry-io/ferry/protocol"
	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go"
)

// Kind is the broker and codec a target uses.
type Kind int

const (
	FerryJSON       Kind = iota // ferry, the load generator's own client, JSON
	FerryMsgpack                // ferry, the load generator's own client, msgpack
	NATS                        // nats-server, nats.go
	FerrySDKJSON                // ferry, the Go SDK (ferry/client), JSON
	FerrySDKMsgpack             // ferry, the Go SDK (ferry/client), msgpack
	Mosquitto                   // mosquitto, paho.mqtt.golang (MQTT 3.1.1)
)

// Target is one broker configuration under test.
type Target struct {
	Name string
	Kind Kind
}

// Targets are the rows of every table: ferry with the load generator's own
// client in both codecs, ferry with the Go SDK in both codecs, NATS, and
// mosquitto.
var Targets = []Target{
	{"ferry-json", FerryJSON}, {"ferry-msgpack", FerryMsgpack},
	{"ferry-sdk-json", FerrySDKJSON}, {"ferry-sdk-msgpack", FerrySDKMsgpack},
	{"nats", NATS}, {"mosquitto", Mosquitto},
}

// IsFerry reports whether t runs a ferry broker.
func (t Target) IsFerry() bool {
	switch t.Kind {
	case FerryJSON, FerryMsgpack, FerrySDKJSON, FerrySDKMsgpack:
		return true
	}
	return false
}

// IsSDK reports whether t's clients are the Go SDK (ferry/client).
func (t Target) IsSDK() bool { return t.Kind == FerrySDKJSON || t.Kind == FerrySDKMsgpack }

// Conn is one client connection of the load generator. Every message it
// publishes carries its send time (Unix ns) in the first bytes of a payload
// of a fixed size; subscribers decode only that time.
type Conn interface {
	// Subscribe subscribes to topic (ferry syntax: / + #) and returns once
	// the broker has confirmed it. onMsg runs on the connection's reading
	// goroutine, one call at a time.
	Subscribe(topic string, onMsg func(sentNs int64)) error
	// Publish sends one message without waiting for any acknowledgement.
	Publish(topic string, sentNs int64) error
	// Flush returns once the broker has processed everything sent before.
	Flush(timeout time.Duration) error
	// Lost reports whether the broker closed the connection.
	Lost() bool
	// SlowConsumer and Dropped count the broker's slow-consumer notices and
	// the messages it reported as dropped for this connection.
	SlowConsumer() int64
	Dropped() int64
	Close()
}

// lostFlag records that the broker closed a connection, and why.
type lostFlag struct {
	lost atomic.Bool
	why  atomic.Value // string: the first reason
}

func (l *lostFlag) mark(err error) {
	if l.lost.CompareAndSwap(false, true) {
		why := "closed"
		if err != nil {
			why = err.Error()
		}
		l.why.Store(why)
	}
}

func (l *lostFlag) Lost() bool { return l.lost.Load() }

// LostReason is why the connection was lost ("" if it was not).
func (l *lostFlag) LostReason() string {
	s, _ := l.why.Load().(string)
	return s
}

// Dial opens a connection to the broker of t at url; payload is the size of
// the payloads it publishes, in bytes.
func Dial(t Target, url string, payload int) (Conn, error) {
	switch t.Kind {
	case FerryJSON:
		return dialFerry(url, protocol.JSON, payload)
	case FerryMsgpack:
		return dialFerry(url, protocol.Msgpack, payload)
	case FerrySDKJSON:
		return dialSDK(url, protocol.JSON, payload)
	case FerrySDKMsgpack:
		return dialSDK(url, protocol.Msgpack, payload)
	case Mosquitto:
		return dialMQTT(url, payload)
	default:
		return dialNATS(url, payload)
	}
}

// ---- ferry over gws -------------------------------------------------------

type reply struct {
	op, code, reason string
	id               uint64
}

type ferryConn struct {
	gws.BuiltinEventHandler
	conn    *gws.Conn
	codec   protocol.Codec
	opcode  gws.Opcode
	payload int

	onMsg   func(int64)
	f       protocol.Frame // reused by OnMessage
	replies chan reply
	nextID  atomic.Uint64
	closing atomic.Bool
	lostFlag
	slow    atomic.Int64
	dropped atomic.Int64

	// publish template
	tmpl    []byte
	tsOff   int
	tmplFor string
	digits  [24]byte

	// Frames are written as nats.go writes: appended to a buffer that a
	// flusher goroutine writes out, so that frames sent back to back
	// share a write.
	wmu      sync.Mutex
	wbuf     []byte
	werr     error
	wcond    *sync.Cond // on wmu: the buffer was taken, or writing failed
	flushed  chan struct{}
	kick     chan struct{}
	stopped  chan struct{}
	stopOnce sync.Once
}

func dialFerry(url string, codec protocol.Codec, payload int) (*ferryConn, error) {
	if codec == protocol.JSON && payload < 19 {
		payload = 19 // room for the decimal timestamp
	}
	if codec == protocol.Msgpack && payload < 8 {
		payload = 8
	}
	c := &ferryConn{codec: codec, payload: payload, replies: make(chan reply, 16)}
	sp := protocol.SubprotocolJSON
	c.opcode = gws.OpcodeText
	if codec == protocol.Msgpack {
		sp = protocol.SubprotocolMsgpack
		c.opcode = gws.OpcodeBinary
	}
	conn, _, err := gws.NewClient(c, &gws.ClientOption{
		Addr:             url,
		RequestHeader:    http.Header{"Sec-WebSocket-Protocol": {sp}},
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   32 << 10, // as nats.go reads (its defaultBufSize)
	})
	if err != nil {
		return nil, err
	}
	c.conn = conn
	c.kick, c.stopped, c.flushed = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	c.wcond = sync.NewCond(&c.wmu)
	go conn.ReadLoop()
	go c.flusher()
	return c, nil
}

// send queues one frame (masked, as a client's must be) for the flusher.
// sendBufferBytes bounds what send may queue: beyond it, send waits for the
// flusher, as nats.go's Publish writes out its 32 KiB buffer when it is
// full, so that a publisher feels the broker's backpressure.
const sendBufferBytes = 32 << 10

func (c *ferryConn) send(payload []byte) error {
	c.wmu.Lock()
	for len(c.wbuf) >= sendBufferBytes && c.werr == nil {
		c.wcond.Wait()
	}
	if c.werr != nil {
		c.wmu.Unlock()
		return c.werr
	}
	c.wbuf = wsframe.AppendMasked(c.wbuf, byte(c.opcode), rand.Uint32(), payload)
	c.wmu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

// flusher writes out what send queued, one write for all of it; once
// stopped, it writes what is left and ends.
func (c *ferryConn) flusher() {
	defer close(c.flushed)
	var out []byte
	for {
		stop := false
		select {
		case <-c.kick:
		case <-c.stopped:
			stop = true
		}
		c.wmu.Lock()
		out, c.wbuf = c.wbuf, out[:0]
		c.wcond.Broadcast()
		c.wmu.Unlock()
		if len(out) > 0 {
			if _, err := c.conn.NetConn().Write(out); err != nil {
				c.wmu.Lock()
				c.werr = err
				c.wcond.Broadcast()
				c.wmu.Unlock()
				return
			}
		}
		if stop {
			c.wmu.Lock()
			c.werr = net.ErrClosed
			c.wcond.Broadcast()
			c.wmu.Unlock()
			return
		}
	}
}

func (c *ferryConn) OnClose(_ *gws.Conn, err error) {
	if !c.closing.Load() {
		c.mark(err)
	}
}

func (c *ferryConn) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	f := &c.f
	f.Reset()
	if protocol.DecodeAny(c.codec, m.Bytes(), f) != nil {
		return
	}
	switch f.Op {
	case protocol.OpMsg:
		if c.onMsg != nil {
			c.onMsg(readStamp(c.codec, f.Data))
		}
	case protocol.OpErr:
		switch f.Code {
		case protocol.CodeOverflow:
			c.dropped.Add(int64(f.Dropped))
		case protocol.CodeSlowConsumer:
			c.slow.Add(1)
		}
		if f.HasID {
			c.replies <- reply{op: f.Op, code: f.Code, reason: f.Reason, id: f.ID}
		}
	default:
		if f.HasID {
			c.replies <- reply{op: f.Op, id: f.ID}
		}
	}
}

// readStamp reads the send time at the start of the data of a msg frame: a
// JSON string starting with 19 decimal digits, or a msgpack bin starting
// with 8 big-endian bytes.
func readStamp(codec protocol.Codec, d []byte) int64 {
	if codec == protocol.JSON { // "ddddddddddddddddddd…"
		if len(d) < 20 {
			return 0
		}
		var v int64
		for _, b := range d[1:20] {
			v = v*10 + int64(b-'0')
		}
		return v
	}
	h := 0
	switch {
	case len(d) > 0 && d[0] == 0xc4:
		h = 2
	case len(d) > 0 && d[0] == 0xc5:
		h = 3
	case len(d) > 0 && d[0] == 0xc6:
		h = 5
	}
	if h == 0 || len(d) < h+8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(d[h:]))
}

func (c *ferryConn) request(f *protocol.Frame, timeout time.Duration) (reply, error) {
	f.ID = c.nextID.Add(1)
	f.HasID = true
	if err := c.send(protocol.Append(c.codec, nil, f)); err != nil {
		return reply{}, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case r := <-c.replies:
			if r.id != f.ID {
				continue
			}
			if r.op == protocol.OpErr {
				return r, fmt.Errorf("%s: %s %s", f.Op, r.code, r.reason)
			}
			return r, nil
		case <-t.C:
			return reply{}, fmt.Errorf("%s: no reply within %v", f.Op, timeout)
		}
	}
}

func (c *ferryConn) Subscribe(topic string, onMsg func(int64)) error {
	c.onMsg = onMsg
	_, err := c.request(&protocol.Frame{Op: protocol.OpSub, Topic: topic}, 10*time.Second)
	return err
}

func (c *ferryConn) Publish(topic string, sentNs int64) error {
	if topic != c.tmplFor {
		var data []byte
		if c.codec == protocol.JSON {
			data = append([]byte{'"'}, bytes.Repeat([]byte{'0'}, 19)...)
			data = append(data, bytes.Repeat([]byte{'x'}, c.payload-19)...)
			data = append(data, '"')
		} else {
			data = []byte{0xc4, byte(c.payload)}
			if c.payload > 255 {
				data = []byte{0xc5, byte(c.payload >> 8), byte(c.payload)}
			}
			data = append(data, make([]byte, c.payload)...)
		}
		c.tmpl = protocol.Append(c.codec, nil, &protocol.Frame{Op: protocol.OpPub, Topic: topic, Data: data})
		i := bytes.Index(c.tmpl, data)
		if i < 0 {
			return errors.New("publish template: data not found")
		}
		c.tsOff = i + 1
		if c.codec == protocol.Msgpack {
			c.tsOff = i + len(data) - c.payload
		}
		c.tmplFor = topic
	}
	if c.codec == protocol.JSON {
		s := strconv.AppendInt(c.digits[:0], sentNs, 10)
		off := c.tsOff + 19 - len(s)
		for i := c.tsOff; i < off; i++ {
			c.tmpl[i] = '0'
		}
		copy(c.tmpl[off:], s)
	} else {
		binary.BigEndian.PutUint64(c.tmpl[c.tsOff:], uint64(sentNs))
	}
	return c.send(c.tmpl)
}

func (c *ferryConn) Flush(timeout time.Duration) error {
	_, err := c.request(&protocol.Frame{Op: protocol.OpPing}, timeout)
	return err
}

func (c *ferryConn) SlowConsumer() int64 { return c.slow.Load() }
func (c *ferryConn) Dropped() int64      { return c.dropped.Load() }

func (c *ferryConn) Close() {
	c.closing.Store(true)
	c.stopOnce.Do(func() { close(c.stopped) })
	<-c.flushed // what was sent goes out before the close frame
	_ = c.conn.WriteClose(1000, nil)
	_ = c.conn.NetConn().Close()
}

// ---- NATS with nats.go over ws:// ------------------------------------------

type natsConn struct {
	nc      *nats.Conn
	buf     []byte
	subj    string
	subjFor string
	closing atomic.Bool
	lostFlag
	slow atomic.Int64
}

func dialNATS(url string, payload int) (*natsConn, error) {
	if payload < 8 {
		payload = 8
	}
	c := &natsConn{buf: make([]byte, payload)}
	nc, err := nats.Connect(url,
		nats.NoReconnect(),
		nats.Timeout(10*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				c.slow.Add(1)
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !c.closing.Load() {
				c.mark(err)
			}
		}))
	if err != nil {
		return nil, err
	}
	c.nc = nc
	return c, nil
}

// Subject translates a ferry topic or filter to a NATS subject.
func Subject(topic string) string {
	s := strings.ReplaceAll(topic, "/", ".")
	s = strings.ReplaceAll(s, "+", "*")
	return strings.ReplaceAll(s, "#", ">")
}

func (c *natsConn) Subscribe(topic string, onMsg func(int64)) error {
	sub, err := c.nc.Subscribe(Subject(topic), func(m *nats.Msg) {
		if len(m.Data) >= 8 {
			onMsg(int64(binary.BigEndian.Uint64(m.Data)))
		}
	})
	if err != nil {
		return err
	}
	// the load generator's own buffer must not be what drops messages
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	return c.nc.FlushTimeout(10 * time.Second)
}

func (c *natsConn) Publish(topic string, sentNs int64) error {
	if topic != c.subjFor {
		c.subj, c.subjFor = Subject(topic), topic
	}
	binary.BigEndian.PutUint64(c.buf, uint64(sentNs))
	return c.nc.Publish(c.subj, c.buf)
}

func (c *natsConn) Flush(timeout time.Duration) error { return c.nc.FlushTimeout(timeout) }
func (c *natsConn) SlowConsumer() int64               { return c.slow.Load() }
func (c *natsConn) Dropped() int64                    { return 0 }

func (c *natsConn) Close() {
	c.closing.Store(true)
	c.nc.Close()
}
