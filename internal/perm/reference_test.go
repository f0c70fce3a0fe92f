package perm

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/protocol"
)

// The reference below decides by the definitions, with protocol.Match and
// every topic that matters, instead of with tries: a topic is permitted when
// an allowed filter matches it and no denied one does; a filter may be
// subscribed to when, for one allowed filter, every topic the filter
// matches is matched by that allowed filter and by no denied one.

// witnesses returns every topic whose levels are names from filters, or
// "z", or "$z", with at most one level more than the longest filter. Any
// other topic is matched by the same filters as one of these: a level
// matters only by which name it equals and, first, by whether it starts
// with '$'; and past the longest filter only '#' matches.
func witnesses(filters []string) []string {
	names := []string{"z", "$z"}
	depth := 0
	seen := map[string]bool{}
	for _, f := range filters {
		levels := strings.Split(f, "/")
		depth = max(depth, len(levels))
		for _, l := range levels {
			if l != "+" && l != "#" && !seen[l] {
				seen[l] = true
				names = append(names, l)
			}
		}
	}
	var out []string
	var walk func(prefix string, n int)
	walk = func(prefix string, n int) {
		for _, name := range names {
			t := prefix + name
			out = append(out, t)
			if n > 1 {
				walk(t+"/", n-1)
			}
		}
	}
	walk("", depth+1)
	return out
}

// matchesAny reports whether one of filters matches topic.
func matchesAny(filters []string, topic string) bool {
	for _, f := range filters {
		if protocol.Match(f, topic) {
			return true
		}
	}
	return false
}

func refPermits(allow, deny []string, topic string) bool {
	return matchesAny(allow, topic) && !matchesAny(deny, topic)
}

func refPermitsAll(allow, deny []string, filter string, topics []string) bool {
	for _, t := range topics {
		if protocol.Match(filter, t) && matchesAny(deny, t) {
			return false
		}
	}
next:
	for _, a := range allow {
		for _, t := range topics {
			if protocol.Match(filter, t) && !protocol.Match(a, t) {
				continue next
			}
		}
		return true
	}
	return false
}

// case_ is a set of rules and a filter drawn from a few names, so that
// they often meet.
type case_ struct {
	allow, deny []string
	filter      string
}

// draw makes a case_ from the bytes next gives.
func draw(next func() byte) case_ {
	levels := []string{"a", "b", "$s", "+", "#", "a", "+"}
	filter := func() string {
		n := int(next()%4) + 1
		l := make([]string, n)
		for i := range l {
			l[i] = levels[int(next())%len(levels)]
			if l[i] == "#" && i < n-1 {
				l[i] = "+"
			}
		}
		return strings.Join(l, "/")
	}
	var c case_
	for range next() % 4 {
		c.allow = append(c.allow, filter())
	}
	for range next() % 4 {
		c.deny = append(c.deny, filter())
	}
	c.filter = filter()
	return c
}

// checkCase compares a Set compiled from c with the reference, and checks
// that a filter that may be subscribed to lets no topic through that may
// not be published to.
func checkCase(t *testing.T, c case_) {
	t.Helper()
	checkSet(t, c, both(t, c.allow, c.deny))
	// the same with every node's children in maps, as in nodes with many
	s := both(t, c.allow, c.deny)
	for _, tr := range []*tree{&s.pub, &s.sub} {
		tr.allow.toMaps()
		tr.deny.toMaps()
	}
	checkSet(t, c, s)
}

// toMaps moves the children for names of every node under n into maps.
func (n *node) toMaps() {
	if n.lits == nil && len(n.names) > 0 {
		n.lits = map[string]*node{}
		for i, name := range n.names {
			n.lits[name] = n.kids[i]
		}
		n.names, n.kids = nil, nil
	}
	for _, c := range n.lits {
		c.toMaps()
	}
	if n.plus != nil {
		n.plus.toMaps()
	}
}

func checkSet(t *testing.T, c case_, s *Set) {
	t.Helper()
	all := append(append(append([]string{}, c.allow...), c.deny...), c.filter)
	topics := witnesses(all)
	for _, topic := range topics {
		if got, want := s.CanPublish(topic), refPermits(c.allow, c.deny, topic); got != want {
			t.Fatalf("allow %q deny %q: CanPublish(%q) = %v, the reference says %v", c.allow, c.deny, topic, got, want)
		}
	}
	got := s.CanSubscribe(c.filter)
	if want := refPermitsAll(c.allow, c.deny, c.filter, topics); got != want {
		t.Fatalf("allow %q deny %q: CanSubscribe(%q) = %v, the reference says %v", c.allow, c.deny, c.filter, got, want)
	}
	if got {
		for _, topic := range topics {
			if protocol.Match(c.filter, topic) && !s.CanPublish(topic) {
				t.Fatalf("allow %q deny %q: %q may be subscribed to, but not %q published to", c.allow, c.deny, c.filter, topic)
			}
		}
	}
}

func TestAgainstReference(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	r := rand.New(rand.NewPCG(1, 2))
	next := func() byte { return byte(r.Uint32()) }
	for range n {
		checkCase(t, draw(next))
	}
}

// FuzzSubscribeImpliesPublish checks the Set against the reference for
// rules, a filter and topics drawn from the fuzzer's bytes, and that no
// filter may be subscribed to that lets through a topic that may not be
// published to.
func FuzzSubscribeImpliesPublish(f *testing.F) {
	for _, seed := range []string{"", "\x01\x00\x00\x03\x00", "\x02\x01\x04\x02\x03\x03\x01\x00\x02\x01", "\x03\x03\x02\x05\x06\x01\x04\x00\x02\x02\x05\x04\x01\x03\x03\x06\x04"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		checkCase(t, draw(next))
	})
}

// FuzzTemplate checks that whatever value fills {sub}, the rule
// "t/{sub}/#" allows at most the topics under one level named by it, and
// the denied "t/{sub}/no" lets none of those through.
func FuzzTemplate(f *testing.F) {
	for _, seed := range []string{"dev-17", "+", "#", "a/b", "$SYS", "", "\x00", "\xff", "no", "{sub}"} {
		f.Add(seed, "t/"+seed+"/x")
	}
	f.Fuzz(func(t *testing.T, sub, topic string) {
		r := Lists{Allow: []string{"t/{sub}/#", "other/#"}, Deny: []string{"t/{sub}/no"}}
		s, err := Compile(Rules{Pub: r, Sub: r}, Identity{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		granted := "t/" + sub
		fits := protocol.ValidateTopic(granted, 1<<20) == nil && !strings.Contains(sub, "/") && !strings.HasPrefix(sub, "$")
		if protocol.ValidateTopic(topic, 1<<20) == nil {
			want := protocol.Match("other/#", topic) ||
				fits && protocol.Match(granted+"/#", topic) && !protocol.Match(granted+"/no", topic)
			if got := s.CanPublish(topic); got != want {
				t.Fatalf("sub %q: CanPublish(%q) = %v, want %v", sub, topic, got, want)
			}
		}
		if protocol.ValidateFilter(topic, 1<<20) == nil && s.CanSubscribe(topic) {
			if !protocol.Match("other/#", topic) && !(fits && strings.HasPrefix(topic+"/", granted+"/")) {
				t.Fatalf("sub %q: CanSubscribe(%q) = true", sub, topic)
			}
		}
	})
}
