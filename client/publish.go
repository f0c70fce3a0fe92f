package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/ferry-io/ferry/protocol"
	"github.com/vmihailenco/msgpack/v5"
)

// record is one buffered publish.
type record struct {
	id    uint64 // 0: fire and forget
	frame []byte
	done  chan struct{}
	err   error
	cb    func(error)
	c     *Client // for cb
	// written: a fire-and-forget record that was written, taken out by
	// completeWritten (with the outbox's mu held)
	written bool
}

// outbox holds publishes until they are written (fire and forget) or
// acknowledged, in order, bounded in messages and bytes. While the client
// is disconnected they wait here; after a reconnect, what was sent but not
// acknowledged is sent again (at-least-once).
type outbox struct {
	mu       sync.Mutex
	recs     []*record
	next     int // recs[next:] are not yet sent on this connection
	byID     map[uint64]*record
	bytes    int
	maxMsgs  int
	maxBytes int
	space    chan struct{} // closed when room is made
	ready    chan struct{} // signalled when a record is added
	err      error         // set when the client closed
	empty    chan struct{} // closed when recs becomes empty, for Drain
}

func (o *outbox) init(msgs, bytes int) {
	o.maxMsgs, o.maxBytes = msgs, bytes
	o.byID = make(map[uint64]*record)
	o.ready = make(chan struct{}, 1)
}

// add appends r, waiting for room unless failFast.
func (o *outbox) add(ctx context.Context, r *record, failFast bool) error {
	for {
		o.mu.Lock()
		if o.err != nil {
			o.mu.Unlock()
			return o.err
		}
		if len(o.recs) == 0 || (len(o.recs) < o.maxMsgs && o.bytes+len(r.frame) <= o.maxBytes) {
			o.recs = append(o.recs, r)
			o.bytes += len(r.frame)
			if r.id != 0 {
				o.byID[r.id] = r
			}
			o.mu.Unlock()
			o.wake()
			return nil
		}
		if failFast {
			o.mu.Unlock()
			return ErrBufferFull
		}
		if o.space == nil {
			o.space = make(chan struct{})
		}
		space := o.space
		o.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *outbox) wake() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// nextUnsent returns the first record not yet sent on this connection,
// waiting for one; nil when the connection ends.
func (o *outbox) nextUnsent(connClosed <-chan struct{}) *record {
	for {
		o.mu.Lock()
		if o.next < len(o.recs) {
			r := o.recs[o.next]
			o.next++
			o.mu.Unlock()
			return r
		}
		o.mu.Unlock()
		select {
		case <-o.ready:
		case <-connClosed:
			return nil
		}
	}
}

// moreUnsent appends to batch the records that are ready now, without
// waiting, until batch holds maxN records or the next would take its frames
// past maxBytes.
func (o *outbox) moreUnsent(batch []*record, maxN, maxBytes int) []*record {
	n := 0
	for _, r := range batch {
		n += len(r.frame)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.next < len(o.recs) && len(batch) < maxN && n+len(o.recs[o.next].frame) <= maxBytes {
		r := o.recs[o.next]
		o.next++
		batch = append(batch, r)
		n += len(r.frame)
	}
	return batch
}

// rewind marks everything unsent, for a new connection.
func (o *outbox) rewind() {
	o.mu.Lock()
	o.next = 0
	o.mu.Unlock()
	o.wake()
}

// reply completes the publish with that id; false if f is not for one.
func (o *outbox) reply(f *protocol.Frame) bool {
	o.mu.Lock()
	r := o.byID[f.ID]
	o.mu.Unlock()
	if r == nil {
		return false
	}
	var err error
	if f.Op == protocol.OpErr {
		err = &Error{Code: f.Code, Reason: f.Reason}
	}
	o.complete(r, err)
	return true
}

// complete removes r and reports its outcome.
func (o *outbox) complete(r *record, err error) {
	o.mu.Lock()
	i := -1
	for k, x := range o.recs { // usually the first
		if x == r {
			i = k
			break
		}
	}
	if i < 0 {
		o.mu.Unlock()
		return
	}
	o.recs = append(o.recs[:i], o.recs[i+1:]...)
	if i < o.next {
		o.next--
	}
	o.bytes -= len(r.frame)
	delete(o.byID, r.id)
	if o.space != nil {
		close(o.space)
		o.space = nil
	}
	if len(o.recs) == 0 && o.empty != nil {
		close(o.empty)
		o.empty = nil
	}
	o.mu.Unlock()
	r.finish(err)
}

// completeWritten completes the fire-and-forget records of a batch just
// written, in one pass over the buffer (completing them one by one would
// shift the buffer once for each).
func (o *outbox) completeWritten(batch []*record) {
	o.mu.Lock()
	n := 0
	for _, r := range batch {
		if r.id == 0 {
			r.written = true
			n++
		}
	}
	if n == 0 {
		o.mu.Unlock()
		return
	}
	kept, next := o.recs[:0], o.next
	for k, x := range o.recs {
		if x.written {
			o.bytes -= len(x.frame)
			if k < o.next {
				next--
			}
			continue
		}
		kept = append(kept, x)
	}
	clear(o.recs[len(kept):])
	o.recs, o.next = kept, next
	if o.space != nil {
		close(o.space)
		o.space = nil
	}
	if len(o.recs) == 0 && o.empty != nil {
		close(o.empty)
		o.empty = nil
	}
	o.mu.Unlock()
	// (a fire-and-forget record has nothing to finish but its err)
}

func (r *record) finish(err error) {
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	if r.cb != nil {
		r.c.callback(func() { r.cb(err) })
	}
}

// failLargestSent fails the largest record sent on the last connection
// and not acknowledged.
func (o *outbox) failLargestSent(err error) {
	o.mu.Lock()
	var big *record
	for _, r := range o.recs[:o.next] {
		if r.id != 0 && (big == nil || len(r.frame) > len(big.frame)) {
			big = r
		}
	}
	o.mu.Unlock()
	if big != nil {
		o.complete(big, err)
	}
}

// fail fails every record: the client closed.
func (o *outbox) fail(err error) {
	o.mu.Lock()
	o.err = err
	recs := o.recs
	o.recs, o.bytes, o.next = nil, 0, 0
	o.byID = make(map[uint64]*record)
	if o.space != nil {
		close(o.space)
		o.space = nil
	}
	if o.empty != nil {
		close(o.empty)
		o.empty = nil
	}
	o.mu.Unlock()
	for _, r := range recs {
		r.finish(err)
	}
}

// waitEmpty waits until every record has completed.
func (o *outbox) waitEmpty(ctx context.Context) error {
	o.mu.Lock()
	if len(o.recs) == 0 {
		o.mu.Unlock()
		return nil
	}
	if o.empty == nil {
		o.empty = make(chan struct{})
	}
	ch := o.empty
	o.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Buffered returns the number of publishes buffered (unsent or unacknowledged).
func (c *Client) Buffered() (messages, bytes int) {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return len(c.out.recs), c.out.bytes
}

// PublishOption configures one publish.
type PublishOption func(*protocol.Frame)

// Retain makes the message its topic's retained message (nil data clears
// it).
func Retain() PublishOption { return func(f *protocol.Frame) { f.Retain = true } }

// encodeData encodes data in codec c. []byte is binary data (msgpack bin,
// base64 in JSON); json.RawMessage and msgpack.RawMessage are values
// already encoded (converted if the codec differs); anything else is
// marshalled by the codec's library.
func encodeData(c protocol.Codec, data any) ([]byte, error) {
	switch v := data.(type) {
	case json.RawMessage:
		if !protocol.ValidJSON(v) {
			return nil, fmt.Errorf("client: data: json.RawMessage is not one valid JSON value")
		}
		return protocol.Convert(nil, protocol.JSON, c, v)
	case msgpack.RawMessage:
		if !protocol.ValidMsgpack(v) {
			return nil, fmt.Errorf("client: data: msgpack.RawMessage is not one valid msgpack value")
		}
		return protocol.Convert(nil, protocol.Msgpack, c, v)
	}
	switch v := data.(type) {
	case string: // the common cases, without reflection
		if c == protocol.Msgpack {
			return protocol.AppendMsgpackString(make([]byte, 0, len(v)+5), v), nil
		}
		return protocol.AppendJSONString(make([]byte, 0, len(v)+2), v), nil
	case []byte:
		if c == protocol.Msgpack {
			return appendMsgpackBin(make([]byte, 0, len(v)+5), v), nil
		}
	}
	if c == protocol.Msgpack {
		return msgpack.Marshal(data)
	}
	return json.Marshal(data)
}

// appendMsgpackBin appends b as a msgpack bin, as msgpack.Marshal encodes
// a []byte.
func appendMsgpackBin(dst, b []byte) []byte {
	switch n := len(b); {
	case n <= 0xff:
		dst = append(dst, 0xc4, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0xc5, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, b...)
}

func (c *Client) pubFrame(topic string, data any, id uint64, opts []PublishOption) ([]byte, error) {
	if err := protocol.ValidateTopic(topic, 0); err != nil {
		return nil, &Error{Code: err.Code, Reason: err.Reason}
	}
	enc, err := encodeData(c.opts.Codec, data)
	if err != nil {
		return nil, err
	}
	f := protocol.Frame{Op: protocol.OpPub, Topic: topic, Data: enc, ID: id, HasID: id != 0}
	for _, o := range opts {
		o(&f)
	}
	frame := protocol.Append(c.opts.Codec, make([]byte, 0, len(enc)+len(topic)+48), &f)
	// a frame the broker would refuse by closing the connection must not
	// enter the buffer: it would be sent again after every reconnect
	if len(frame) > c.opts.MaxFrameBytes {
		return nil, fmt.Errorf("client: publish of %d bytes is over the frame limit of %d", len(frame), c.opts.MaxFrameBytes)
	}
	if c.opts.Codec == protocol.JSON && !utf8.Valid(frame) {
		return nil, fmt.Errorf("client: data is not valid UTF-8 JSON")
	}
	return frame, nil
}

func (c *Client) checkOpen() error {
	if c.draining.Load() {
		return ErrClosed
	}
	return nil
}

// Publish publishes data on topic and waits until the broker acknowledged
// it (routed to every matching subscription) or refused it (an *Error with
// the broker's code). While disconnected the publish waits in the buffer
// and is sent after the reconnect; one sent but not acknowledged when the
// connection dropped is sent again. If the buffer is full Publish waits for
// room (or fails with ErrBufferFull under FailFast). ctx bounds the whole
// call; a publish abandoned by ctx may still be delivered.
func (c *Client) Publish(ctx context.Context, topic string, data any, opts ...PublishOption) error {
	f, err := c.PublishAsync(ctx, topic, data, opts...)
	if err != nil {
		return err
	}
	select {
	case <-f.Done():
		return f.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PublishFuture is the outcome of an asynchronous publish.
type PublishFuture struct{ r *record }

// Done is closed when the broker acknowledged or refused the publish, or
// the client closed.
func (f *PublishFuture) Done() <-chan struct{} { return f.r.done }

// Wait waits for the outcome, or for ctx.
func (f *PublishFuture) Wait(ctx context.Context) error {
	select {
	case <-f.r.done:
		return f.r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err is the outcome once Done is closed: nil when acknowledged (and while
// still pending: use Done or Wait first).
func (f *PublishFuture) Err() error {
	select {
	case <-f.r.done:
		return f.r.err
	default:
		return nil
	}
}

// PublishAsync buffers a publish that the broker will acknowledge and
// returns at once with its future (ctx bounds only the wait for room in
// the buffer).
func (c *Client) PublishAsync(ctx context.Context, topic string, data any, opts ...PublishOption) (*PublishFuture, error) {
	if err := c.checkOpen(); err != nil {
		return nil, err
	}
	id := c.nextID.Add(1)
	frame, err := c.pubFrame(topic, data, id, opts)
	if err != nil {
		return nil, err
	}
	r := &record{id: id, frame: frame, done: make(chan struct{})}
	if err := c.out.add(ctx, r, c.opts.FailFast); err != nil {
		return nil, err
	}
	return &PublishFuture{r}, nil
}

// PublishCallback is PublishAsync with a callback, called once with the
// outcome (on the callback goroutine, in order with the other callbacks).
func (c *Client) PublishCallback(ctx context.Context, topic string, data any, cb func(error), opts ...PublishOption) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	id := c.nextID.Add(1)
	frame, err := c.pubFrame(topic, data, id, opts)
	if err != nil {
		return err
	}
	return c.out.add(ctx, &record{id: id, frame: frame, cb: cb, c: c}, c.opts.FailFast)
}

// PublishNoAck publishes without asking for an acknowledgement, for
// telemetry: it returns once the message is in the buffer, which sends it
// in order when connected. While disconnected such publishes wait in the
// buffer like the others; one written just before a connection dropped is
// not sent again (at-most-once).
func (c *Client) PublishNoAck(ctx context.Context, topic string, data any, opts ...PublishOption) error {
	if err := c.checkOpen(); err != nil {
		return err
	}
	frame, err := c.pubFrame(topic, data, 0, opts)
	if err != nil {
		return err
	}
	return c.out.add(ctx, &record{frame: frame}, c.opts.FailFast)
}
