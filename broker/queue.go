package broker

import (
	"sync"
	"time"
)

// outQueue is a connection's outbound queue of encoded WebSocket frames,
// bounded in bytes. Frames are shared between connections and never
// modified. bytes counts frames from push until their write completes, so
// the bound covers what the writer holds too.
type outQueue struct {
	mu      sync.Mutex
	frames  frameList
	bytes   int
	limit   int
	spell   time.Duration // Options.DrainTimeout: longest full spell; 0: none
	running bool          // a writer goroutine is active
	closed  bool          // nothing more is accepted
	closeF  []byte        // written after the queue drains, then the socket closes
	dropped uint64        // messages dropped (drop policy) not yet reported
	// overflowing is set when a message was dropped for a full queue and
	// cleared when the queue drains to half: meanwhile publishers do not
	// stall on this queue again, so one stuck reader cannot throttle them.
	overflowing bool
	space       chan struct{}
	watch       drainWatch
	spare       [][]byte       // a batch slice to reuse
	writers     sync.WaitGroup // the writer goroutine, counted under mu

	// set once before use
	writer        func()              // the writer goroutine's body
	overflowFrame func(uint64) []byte // encodes the report of n dropped messages
}

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
	if q.bytes > 0 && q.bytes+len(f) > q.limit {
		if q.overflowing && refuse {
			return pushRefuse, nil
		}
		q.watch.full()
		if refuse && q.watch.over(q.spell) {
			return pushRefuse, nil // full for too long: a slow consumer
		}
		if q.space == nil {
			q.space = make(chan struct{})
		}
		return pushFull, q.space
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
	q.frames.push(f)
	q.bytes += len(f)
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
		q.frames.push(of)
		q.bytes += len(of)
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
	if q.frames.n == 0 && !q.closed && q.closeF == nil {
		q.reportDropsLocked()
	}
	if q.frames.n == 0 || q.closed {
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
	for q.frames.n > 0 && len(batch) < maxBatchFrames && (len(batch) == 0 || n+len(q.frames.first()) <= maxBatchBytes) {
		f := q.frames.pop()
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
	q.bytes -= n
	if q.overflowing && q.bytes <= q.limit/2 {
		q.overflowing = false
	}
	q.watch.drained(q.bytes <= q.limit/2) // the bytes were written: the subscriber reads
	q.wake()
	q.mu.Unlock()
}

// wake must be called with q.mu held.
func (q *outQueue) wake() {
	if q.space != nil {
		close(q.space)
		q.space = nil
	}
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
		q.discardLocked()
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
	q.discardLocked()
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
	q.discardLocked()
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

func (q *outQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// discardLocked drops the queued frames.
func (q *outQueue) discardLocked() {
	for q.frames.n > 0 {
		q.bytes -= len(q.frames.pop())
	}
}

// chunkFrames is how many frames a chunk of a frameList holds.
const chunkFrames = 64

type frameChunk struct {
	f    [chunkFrames][]byte
	next *frameChunk
}

// chunkPool holds empty chunks: a queue holds chunks only while it holds
// frames, so an idle connection holds none.
var chunkPool = sync.Pool{New: func() any { return new(frameChunk) }}

// frameList is a FIFO of frames kept in chunks: pushing never copies what
// is queued, however long the queue.
type frameList struct {
	head, tail *frameChunk
	hi, ti     int // next frame to pop in head; next free slot in tail
	n          int // frames held
}

func (l *frameList) push(f []byte) {
	switch {
	case l.tail == nil:
		l.tail = chunkPool.Get().(*frameChunk)
		l.head, l.hi, l.ti = l.tail, 0, 0
	case l.ti == chunkFrames:
		c := chunkPool.Get().(*frameChunk)
		l.tail.next, l.tail, l.ti = c, c, 0
	}
	l.tail.f[l.ti] = f
	l.ti++
	l.n++
}

// first returns the frame pop would return; l must not be empty.
func (l *frameList) first() []byte { return l.head.f[l.hi] }

// pop removes and returns the first frame; l must not be empty.
func (l *frameList) pop() []byte {
	c := l.head
	f := c.f[l.hi]
	c.f[l.hi] = nil
	l.hi++
	l.n--
	switch {
	case l.n == 0:
		*l = frameList{}
	case l.hi == chunkFrames:
		l.head, l.hi = c.next, 0
	default:
		return f
	}
	// c is empty (its slots were cleared as they were popped)
	c.next = nil
	chunkPool.Put(c)
	return f
}
