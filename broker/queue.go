package broker

import (
	"sync"
	"time"
)

// boundedQueue is a FIFO of T bounded in bytes, with the backpressure both
// of ferry's queues follow: a connection's outbound queue of frames
// (outQueue) and an in-process subscription's queue of messages
// (Subscription). Its owner guards it with its own mutex, decides when to
// add (fits, else full) and releases an item's bytes once the subscriber
// has it.
//
// While full, pushers wait on a channel closed when room is made; an
// overflow makes full refuse until the queue has drained to half.
type boundedQueue[T any] struct {
	items chunkList[T]
	// bytes counts items from add until release, so the bound covers what
	// the consumer has taken and not yet finished with.
	bytes int
	limit int
	// overflowing is set when a message was dropped for a full queue and
	// cleared when the queue drains to half: meanwhile publishers do not
	// stall on this queue again, so one stuck reader cannot throttle them.
	overflowing bool
	space       chan struct{}
	watch       drainWatch
}

// fits reports whether an item of n bytes may be added now. An empty
// queue takes any item, however large.
func (q *boundedQueue[T]) fits(n int) bool { return q.bytes == 0 || q.bytes+n <= q.limit }

// full is the answer to a push that does not fit: pushFull with a channel
// closed as soon as room may have been made or, with refuse, pushRefuse if
// the queue is overflowing.
func (q *boundedQueue[T]) full(refuse bool) (pushResult, <-chan struct{}) {
	if q.overflowing && refuse {
		return pushRefuse, nil
	}
	q.watch.full()
	if q.space == nil {
		q.space = make(chan struct{})
	}
	return pushFull, q.space
}

// add appends it, of n bytes, whatever the bound.
func (q *boundedQueue[T]) add(it T, n int) {
	q.items.push(it)
	q.bytes += n
}

// pop removes the first item; its bytes stay counted until release. The
// queue must not be empty.
func (q *boundedQueue[T]) pop() T { return q.items.pop() }

// release gives back n bytes of popped items the subscriber has: an
// overflow, and a full spell, end once the queue is down to half; stalled
// pushers are woken.
func (q *boundedQueue[T]) release(n int) {
	q.bytes -= n
	half := q.bytes <= q.limit/2
	if q.overflowing && half {
		q.overflowing = false
	}
	q.watch.drained(half)
	q.wake()
}

// wake closes the channel stalled pushers wait on.
func (q *boundedQueue[T]) wake() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
}

// discard drops the queued items (not the popped ones), size telling the
// bytes of each.
func (q *boundedQueue[T]) discard(size func(T) int) {
	for q.items.n > 0 {
		q.bytes -= size(q.items.pop())
	}
}

// outQueue is a connection's outbound queue of encoded WebSocket frames,
// bounded in bytes. Frames are shared between connections and never
// modified. A frame's bytes are released when its write completes, so the
// bound covers what the writer holds too.
type outQueue struct {
	mu sync.Mutex
	boundedQueue[[]byte]
	running bool           // a writer goroutine is active
	closed  bool           // nothing more is accepted
	closeF  []byte         // written after the queue drains, then the socket closes
	dropped uint64         // messages dropped (drop policy) not yet reported
	spare   [][]byte       // a batch slice to reuse
	writers sync.WaitGroup // the writer goroutine, counted under mu

	// set once before use, with limit and spell
	writer        func()              // the writer goroutine's body
	overflowFrame func(uint64) []byte // encodes the report of n dropped messages
}

// frameSize is what a frame counts for in the bound: its length.
func frameSize(f []byte) int { return len(f) }

// A writer takes at most this many frames and bytes per write (one
// writev), so that room is made, and stalled publishers woken, as each
// part of a long queue is written rather than once it all is. 1024 is
// Linux's IOV_MAX.
const (
	maxBatchFrames = 1024
	maxBatchBytes  = 64 << 10
)

type pushResult uint8

const (
	pushed     pushResult = iota
	pushFull              // full: wait on the returned channel, then retry
	pushRefuse            // full and overflowing: apply the policy now
	pushClosed            // gone
)

// push appends f unless the queue is full or closed. When full it returns
// a channel closed as soon as room may have been made.
func (q *outQueue) push(f []byte) (pushResult, <-chan struct{}) {
	return q.pushFrame(f, true)
}

// pushReply is push for frames that are never dropped: it does not refuse
// when overflowing, the caller waits for room instead.
func (q *outQueue) pushReply(f []byte) (pushResult, <-chan struct{}) {
	return q.pushFrame(f, false)
}

func (q *outQueue) pushFrame(f []byte, refuse bool) (pushResult, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.closeF != nil {
		return pushClosed, nil
	}
	if !q.fits(len(f)) {
		return q.full(refuse)
	}
	q.reportDropsLocked()
	q.appendLocked(f)
	return pushed, nil
}

// pushForce appends f whatever the bound (other bounds limit such
// frames), unless the queue is closed.
func (q *outQueue) pushForce(f []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.closeF != nil {
		return false
	}
	q.reportDropsLocked()
	q.appendLocked(f)
	return true
}

// pushIfRoom appends f only if it fits, without waiting or reporting.
func (q *outQueue) pushIfRoom(f []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed && q.closeF == nil && q.bytes+len(f) <= q.limit {
		q.appendLocked(f)
	}
}

func (q *outQueue) appendLocked(f []byte) {
	q.add(f, len(f))
	q.startLocked()
}

func (q *outQueue) startLocked() {
	if !q.running {
		q.running = true
		q.writers.Add(1)
		go q.writer()
	}
}

func (q *outQueue) reportDropsLocked() {
	if q.dropped > 0 {
		of := q.overflowFrame(q.dropped)
		q.dropped = 0
		q.add(of, len(of))
	}
}

// drop counts n messages dropped for a full queue. The report goes out
// before the next frame, or when the writer has drained the queue.
func (q *outQueue) drop(n uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropped += n
	q.overflowing = true
	if !q.running && !q.closed && q.closeF == nil {
		// the writer drained the queue meanwhile: report now
		q.reportDropsLocked()
		q.startLocked()
	}
}

// take moves the first queued frames (up to maxBatchFrames and
// maxBatchBytes, at least one) into a batch for the writer, which returns it
// with written. With none queued it reports the close frame to write (if
// any) and marks the writer stopped.
func (q *outQueue) take() (batch [][]byte, n int, closeF []byte, stop bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.items.n == 0 && !q.closed && q.closeF == nil {
		q.reportDropsLocked()
	}
	if q.items.n == 0 || q.closed {
		closeF, q.closeF = q.closeF, nil
		if closeF != nil {
			q.closed = true // the close frame is the last one ever
		}
		q.running = false
		q.writers.Done()
		return nil, 0, closeF, true
	}
	batch = q.spare[:0]
	q.spare = nil
	for q.items.n > 0 && len(batch) < maxBatchFrames && (len(batch) == 0 || n+len(q.items.first()) <= maxBatchBytes) {
		f := q.pop()
		n += len(f)
		batch = append(batch, f)
	}
	return batch, n, nil, false
}

// written releases the n bytes of a written batch and wakes stalled
// pushers.
func (q *outQueue) written(batch [][]byte, n int) {
	clear(batch)
	q.mu.Lock()
	if cap(batch) <= maxBatchFrames {
		q.spare = batch[:0]
	}
	q.release(n) // the bytes were written: the subscriber reads
	q.mu.Unlock()
}

// closeAfter keeps what is already queued (discard false) or drops it
// (discard true), and arranges for f to be written last. It returns false
// if the queue was already closing.
func (q *outQueue) closeAfter(f []byte, discard bool) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.closeF != nil {
		return false
	}
	if discard {
		q.discard(frameSize)
		q.dropped = 0
	}
	q.closeF = f
	q.wake()
	q.startLocked()
	return true
}

// abandon shuts the queue after its writer panicked, counting the writer
// out if it had not been.
func (q *outQueue) abandon() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.discard(frameSize)
	q.closeF = nil
	q.wake()
	if q.running {
		q.running = false
		q.writers.Done()
	}
}

// shut closes the queue for good and drops what is left.
func (q *outQueue) shut() {
	q.mu.Lock()
	q.closed = true
	q.discard(frameSize)
	q.closeF = nil
	q.wake()
	q.mu.Unlock()
}

// draining implements transport.draining for the queue.
func (q *outQueue) draining(quiet, limit time.Duration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.closed && q.watch.draining(quiet, limit)
}

// isClosed reports whether the queue was shut or is closing.
func (q *outQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed || q.closeF != nil
}

func (q *outQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// chunkItems is how many items a chunk of a chunkList holds.
const chunkItems = 64

type chunk[T any] struct {
	items [chunkItems]T
	next  *chunk[T]
}

// Pools of empty chunks, one per element type: a queue holds chunks only
// while it holds items, so an idle connection or subscription holds none.
var (
	frameChunks = sync.Pool{New: func() any { return new(chunk[[]byte]) }}
	localChunks = sync.Pool{New: func() any { return new(chunk[localItem]) }}
)

// chunkPool returns the pool of empty chunks of T. It runs once per
// chunkItems items pushed or popped.
func chunkPool[T any]() *sync.Pool {
	switch any((*chunk[T])(nil)).(type) {
	case *chunk[[]byte]:
		return &frameChunks
	case *chunk[localItem]:
		return &localChunks
	}
	panic("broker: no chunk pool for this element type")
}

// chunkList is a FIFO kept in chunks: pushing never copies what is
// queued, however long the queue.
type chunkList[T any] struct {
	head, tail *chunk[T]
	hi, ti     int // next item to pop in head; next free slot in tail
	n          int // items held
}

func (l *chunkList[T]) push(it T) {
	switch {
	case l.tail == nil:
		l.tail = chunkPool[T]().Get().(*chunk[T])
		l.head, l.hi, l.ti = l.tail, 0, 0
	case l.ti == chunkItems:
		c := chunkPool[T]().Get().(*chunk[T])
		l.tail.next, l.tail, l.ti = c, c, 0
	}
	l.tail.items[l.ti] = it
	l.ti++
	l.n++
}

// first returns the item pop would return; l must not be empty.
func (l *chunkList[T]) first() T { return l.head.items[l.hi] }

// pop removes and returns the first item; l must not be empty.
func (l *chunkList[T]) pop() T {
	c := l.head
	it := c.items[l.hi]
	var zero T
	c.items[l.hi] = zero
	l.hi++
	l.n--
	switch {
	case l.n == 0:
		*l = chunkList[T]{}
	case l.hi == chunkItems:
		l.head, l.hi = c.next, 0
	default:
		return it
	}
	// c is empty (its slots were cleared as they were popped)
	c.next = nil
	chunkPool[T]().Put(c)
	return it
}
