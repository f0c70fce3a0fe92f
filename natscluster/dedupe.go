package natscluster

import "time"

// Bounds of the dedupe state.
const (
	dedupeMax = 4096            // keys per generation
	dedupeTTL = 5 * time.Minute // age of a generation
)

// dedupe remembers the last sequence number seen per key (an origin, or an
// origin and a queue group) so that the copies overlapping subscriptions
// bring are skipped. Every node that starts has a new origin, so keys are
// forgotten once they go unseen: there are two generations, the current
// one and the previous one; a key seen moves into the current one, and the
// current one becomes the previous one (whose keys are forgotten) once it
// holds max keys or is ttl old. At most 2*max keys are held, and a key is
// forgotten after ttl to 2*ttl of silence, or after max other keys were
// seen. The copies of a message arrive one after another, so forgetting a
// key between them takes max other keys in between. Not safe for
// concurrent use: dispatch owns it.
type dedupe struct {
	max       int
	ttl       time.Duration
	cur, prev map[string]uint64
	since     time.Time // when cur began
}

func newDedupe(max int, ttl time.Duration) *dedupe {
	return &dedupe{max: max, ttl: ttl, cur: make(map[string]uint64)}
}

// fresh reports whether seq is past the last sequence number seen from key,
// and records it.
func (d *dedupe) fresh(key string, seq uint64, now time.Time) bool {
	if len(d.cur) >= d.max || now.Sub(d.since) >= d.ttl {
		d.prev, d.cur, d.since = d.cur, make(map[string]uint64), now
	}
	last, ok := d.cur[key]
	if !ok {
		if last, ok = d.prev[key]; ok {
			delete(d.prev, key)
		}
	}
	if seq <= last {
		d.cur[key] = last
		return false
	}
	d.cur[key] = seq
	return true
}

// len is how many keys are held.
func (d *dedupe) len() int { return len(d.cur) + len(d.prev) }
