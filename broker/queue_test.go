package broker

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The writer takes a long queue in batches of at most maxBatchFrames frames
// and maxBatchBytes bytes (one frame at least, however large), in order,
// while pushes go on between takes; the byte count follows every step.
func TestOutQueueBatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := outQueue{limit: 1 << 30, writer: func() {}, overflowFrame: func(uint64) []byte { return nil }}
	var want [][]byte // what was pushed and not yet taken, in order
	queued := 0       // their bytes
	most := 0         // the most frames queued at once
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
		most = max(most, len(want))
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
		if q.head > len(q.frames) || len(q.frames)-q.head != len(want) {
			t.Fatalf("round %d: head %d, %d frames, want %d queued", round, q.head, len(q.frames), len(want))
		}
		// taken frames are reclaimed: the backing array follows what is
		// queued, not everything pushed since the queue was last empty
		if cap(q.frames) > 4*most+256 {
			t.Fatalf("round %d: backing array of %d for at most %d queued frames", round, cap(q.frames), most)
		}
	}
	// drain: then the writer stops, and the backing array is released or reset
	for len(want) > 0 {
		batch, n, _, _ := q.take()
		want = want[len(batch):]
		q.written(batch, n)
	}
	if _, _, _, stop := q.take(); !stop {
		t.Fatal("take on an empty queue did not stop the writer")
	}
	if q.size() != 0 || q.head != 0 || len(q.frames) != 0 {
		t.Fatalf("drained queue: %d bytes, head %d, %d frames", q.size(), q.head, len(q.frames))
	}
	// compaction keeps the backing array bounded by what is queued
	if cap(q.frames) > 256 {
		t.Fatalf("drained queue keeps a backing array of %d", cap(q.frames))
	}
}
