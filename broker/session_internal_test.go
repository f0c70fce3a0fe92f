package broker

import "testing"

// A nack of a mid the session knows but has no delivery out for (ack
// tolerates the same) is refused, not an index out of range.
func TestNackOfMidNotInflight(t *testing.T) {
	b := quietBroker(t, Options{})
	defer b.Shutdown(t.Context())
	ss := newSession(b, "s")
	var tr transport = &Subscription{}
	ss.t = tr
	s := &subscription{sess: ss, ack: &ackState{window: 1}}
	ss.mids[7] = s
	if ss.nack(tr, 7) {
		t.Fatal("nack of a mid with no delivery out reported success")
	}
	if !ss.ack(tr, 7) {
		t.Fatal("ack of a known mid refused")
	}
}
