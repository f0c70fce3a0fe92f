package broker

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil"
)

// The writer takes a long queue in batches of at most maxBatchFrames frames
// and maxBatchBytes bytes (one frame at least, however large), in order,
// while pushes go on between takes; the byte count follows every step.
func TestOutQueueBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := testQueue(1 << 30)
	var want [][]byte // what was pushed and not yet taken, in order
	queued := 0       // their bytes
	seq := 0
	push := func(n int) {
		for range n {
			size := 1 + rng.IntN(300)
			if rng.IntN(500) == 0 {
				size = maxBatchBytes + 1 + rng.IntN(1000) // larger than a batch
			}
			f := bytes.Repeat([]byte{byte(seq)}, size)
			f[0] = byte(seq >> 8)
			seq++
			if r, _ := q.push(f); r != pushed {
				t.Fatalf("push %d refused: %v", seq, r)
			}
			want = append(want, f)
			queued += size
		}
	}
	// the queue never empties in these rounds: the writer takes until
	// about 2000 frames are left, so taken frames must be reclaimed
	// without the queue ever draining
	for round := 0; round < 500; round++ {
		push(rng.IntN(2000))
		floor := 1500 + rng.IntN(1000)
		for len(want) > floor {
			batch, n, closeF, stop := q.take()
			if stop || closeF != nil {
				t.Fatalf("round %d: take stopped with %d frames queued", round, len(want))
			}
			size := 0
			for i, f := range batch {
				if !bytes.Equal(f, want[i]) {
					t.Fatalf("round %d: frame %d of the batch is out of order", round, i)
				}
				size += len(f)
			}
			if size != n {
				t.Fatalf("round %d: take reports %d bytes, the batch holds %d", round, n, size)
			}
			if len(batch) > maxBatchFrames || (len(batch) > 1 && n > maxBatchBytes) || len(batch) == 0 {
				t.Fatalf("round %d: batch of %d frames, %d bytes", round, len(batch), n)
			}
			// the batch is as large as the limits allow
			if len(batch) < maxBatchFrames && len(batch) < len(want) && n+len(want[len(batch)]) <= maxBatchBytes {
				t.Fatalf("round %d: batch of %d frames, %d bytes, stopped short", round, len(batch), n)
			}
			want = want[len(batch):]
			queued -= n
			q.written(batch, n)
			if got := q.size(); got != queued {
				t.Fatalf("round %d: queue counts %d bytes, %d are queued", round, got, queued)
			}
		}
		if q.items.n != len(want) {
			t.Fatalf("round %d: %d frames held, want %d queued", round, q.items.n, len(want))
		}
		// taken frames are reclaimed: the chunks follow what is queued,
		// not everything pushed since the queue was last empty
		if c := chunks(&q.items); c > len(want)/chunkItems+2 {
			t.Fatalf("round %d: %d chunks hold %d frames", round, c, len(want))
		}
	}
	// drain: then the writer stops, and the queue holds no chunk
	for len(want) > 0 {
		batch, n, _, _ := q.take()
		want = want[len(batch):]
		q.written(batch, n)
	}
	if _, _, _, stop := q.take(); !stop {
		t.Fatal("take on an empty queue did not stop the writer")
	}
	if q.size() != 0 || q.items != (chunkList[[]byte]{}) {
		t.Fatalf("drained queue: %d bytes, list %+v", q.size(), q.items)
	}
}

// testQueue returns an outQueue whose writer does nothing: the test takes
// the frames.
func testQueue(limit int) *outQueue {
	q := &outQueue{writer: func() {}, overflowFrame: func(uint64) []byte { return nil }}
	q.limit = limit
	return q
}

// chunks counts the chunks of l.
func chunks[T any](l *chunkList[T]) int {
	n := 0
	for c := l.head; c != nil; c = c.next {
		n++
	}
	return n
}

// An in-process subscription's queue keeps its messages in the same chunked
// FIFO: in order, the chunks following what is queued, none once empty.
func TestChunkListOfMessages(t *testing.T) {
	var l chunkList[localItem]
	next, popped := uint64(1), uint64(1)
	for round := 0; round < 50; round++ {
		for range 1 + round*37%300 {
			l.push(localItem{mid: next})
			next++
		}
		for l.n > round%100 {
			if it := l.pop(); it.mid != popped {
				t.Fatalf("round %d: popped mid %d, want %d", round, it.mid, popped)
			}
			popped++
		}
		if c := chunks(&l); c > l.n/chunkItems+2 {
			t.Fatalf("round %d: %d chunks hold %d items", round, c, l.n)
		}
	}
	for l.n > 0 {
		l.pop()
	}
	if l != (chunkList[localItem]{}) {
		t.Fatalf("empty list holds %+v", l)
	}
}

// recConn records the size of every read.
type recConn struct {
	net.Conn
	mu   sync.Mutex
	lens []int
}

func (r *recConn) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.lens = append(r.lens, len(p))
	r.mu.Unlock()
	return r.Conn.Read(p)
}

// A read that exactly fills the small buffer starts reading ahead; when the
// peer then goes quiet, the wait happens in the small buffer, not in the
// 32 KiB read-ahead one.
func TestRegressionIdleWaitHoldsNoReadAhead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	raw, err := srv.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc := &recConn{Conn: srv}
	lc := &lockedConn{Conn: rc, raw: raw, unchecked: true} // bytes, not frames: the checker would refuse them
	br := bufio.NewReaderSize(lc, DefaultReadBufferSize)
	if _, err := cli.Write(make([]byte, DefaultReadBufferSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(br, make([]byte, DefaultReadBufferSize)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(br, make([]byte, 2)); done <- err }()
	testutil.Eventually(t, 20*time.Second, time.Millisecond, "the reader blocked in a read of the connection", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return len(rc.lens) >= 2
	})
	rc.mu.Lock()
	waiting := rc.lens[len(rc.lens)-1]
	rc.mu.Unlock()
	if _, err := cli.Write([]byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if waiting >= readAheadSize || lc.ahead != nil {
		t.Fatalf("the idle wait reads into %d bytes (read-ahead held: %v)", waiting, lc.ahead != nil)
	}
}
