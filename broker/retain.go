package broker

import (
	"slices"
	"strings"
	"sync"

	"github.com/ferry-io/ferry/protocol"
)

// retainStore keeps the last retained message of each topic, bounded in
// count and bytes.
type retainStore struct {
	mu    sync.Mutex
	msgs  map[string]*stored
	bytes int
}

// set stores m as its topic's retained message; data null clears it. It
// fails when the store is full and the topic is new (or grows past the
// byte bound).
func (r *retainStore) set(b *Broker, m *stored) *protocol.Error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.msgs[m.topic]
	if isNull(m.codec, m.data) {
		if old != nil {
			delete(r.msgs, m.topic)
			r.bytes -= old.size()
		}
		return nil
	}
	grow := m.size()
	if old != nil {
		grow -= old.size()
	}
	switch {
	case old == nil && len(r.msgs) >= b.opts.MaxRetained:
		return protocol.Errorf(protocol.CodeLimit, "pub: the broker already retains %d messages, the limit", b.opts.MaxRetained)
	case r.bytes+grow > b.opts.MaxRetainedBytes:
		return protocol.Errorf(protocol.CodeLimit, "pub: retained messages would exceed %d bytes, the limit", b.opts.MaxRetainedBytes)
	}
	if r.msgs == nil {
		r.msgs = make(map[string]*stored)
	}
	r.msgs[m.topic] = m
	r.bytes += grow
	return nil
}

// matching returns the retained messages whose topic filter matches.
func (r *retainStore) matching(filter string) []*stored {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*stored
	for topic, m := range r.msgs {
		if protocol.Match(filter, topic) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *stored) int { return strings.Compare(a.topic, b.topic) })
	return out
}

func (r *retainStore) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func isNull(c protocol.Codec, data []byte) bool {
	if c == protocol.Msgpack {
		return len(data) == 1 && data[0] == 0xc0
	}
	return protocol.ValidJSON(data) && string(trimSpace(data)) == "null"
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
