package broker

import "sync"

// outQueue is a connection's outbound queue of encoded WebSocket frames,
// bounded in bytes. Frames are shared between connections and never
// modified. bytes counts frames from push until their write completes, so
// the bound covers what the writer holds too.
type outQueue struct {
	mu      sync.Mutex
	frames  [][]byte
	bytes   int
	limit   int
	running bool   // a writer goroutine is active
	closed  bool   // nothing more is accepted
	closeF  []byte // written after the queue drains, then the socket closes
	dropped uint64 // messages dropped (drop policy) not yet reported
	space   chan struct{}
	writers sync.WaitGroup // the writer goroutine, counted under mu
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushClosed
)

// push appends f unless the queue is full or closed. When full it returns
// a channel closed as soon as room may have been made. startWriter is true
// when the caller must start the writer goroutine.
func (q *outQueue) push(f []byte, overflowFrame func(n uint64) []byte) (r pushResult, wait <-chan struct{}, startWriter bool) {
	return q.pushLimit(f, q.limit, overflowFrame)
}

// pushLimit is push with another bound.
func (q *outQueue) pushLimit(f []byte, limit int, overflowFrame func(n uint64) []byte) (r pushResult, wait <-chan struct{}, startWriter bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.closeF != nil {
		return pushClosed, nil, false
	}
	if q.bytes > 0 && q.bytes+len(f) > limit {
		if q.space == nil {
			q.space = make(chan struct{})
		}
		return pushFull, q.space, false
	}
	if q.dropped > 0 && overflowFrame != nil {
		of := overflowFrame(q.dropped)
		q.dropped = 0
		q.frames = append(q.frames, of)
		q.bytes += len(of)
	}
	q.frames = append(q.frames, f)
	q.bytes += len(f)
	if !q.running {
		q.running = true
		q.writers.Add(1)
		startWriter = true
	}
	return pushed, nil, startWriter
}

// take moves the queued frames into batch. With none queued it reports
// the close frame to write (if any) and marks the writer stopped.
func (q *outQueue) take(batch [][]byte, overflowFrame func(n uint64) []byte) (_ [][]byte, n int, closeF []byte, stop bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 && q.dropped > 0 && !q.closed && q.closeF == nil {
		of := overflowFrame(q.dropped)
		q.dropped = 0
		q.frames = append(q.frames, of)
		q.bytes += len(of)
	}
	if len(q.frames) == 0 || q.closed {
		closeF, q.closeF = q.closeF, nil
		if closeF != nil {
			q.closed = true // the close frame is the last one ever
		}
		q.running = false
		return batch, 0, closeF, true
	}
	for _, f := range q.frames {
		n += len(f)
	}
	batch = append(batch, q.frames...)
	clear(q.frames)
	if cap(q.frames) > 256 {
		q.frames = nil
	} else {
		q.frames = q.frames[:0]
	}
	return batch, n, nil, false
}

// written releases n bytes after a write and wakes stalled pushers.
func (q *outQueue) written(n int) {
	q.mu.Lock()
	q.bytes -= n
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

// drop counts one dropped message; reported later by an overflow frame.
func (q *outQueue) drop() {
	q.mu.Lock()
	q.dropped++
	q.mu.Unlock()
}

// closeAfter keeps what is already queued (discard false) or drops it
// (discard true), and arranges for f to be written last. It returns false if
// the queue was already closing, and startWriter as push does.
func (q *outQueue) closeAfter(f []byte, discard bool) (ok, startWriter bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.closeF != nil {
		return false, false
	}
	if discard {
		q.discardLocked()
		q.dropped = 0
	}
	q.closeF = f
	q.wake()
	if !q.running {
		q.running = true
		q.writers.Add(1)
		startWriter = true
	}
	return true, startWriter
}

// shut closes the queue for good and drops what is left.
func (q *outQueue) shut() {
	q.mu.Lock()
	q.closed = true
	q.discardLocked()
	q.frames = nil
	q.closeF = nil
	q.wake()
	q.mu.Unlock()
}

func (q *outQueue) size() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// discardLocked drops the queued frames.
func (q *outQueue) discardLocked() {
	for _, f := range q.frames {
		q.bytes -= len(f)
	}
	clear(q.frames)
	q.frames = q.frames[:0]
}
