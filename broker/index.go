package broker

import (
	"strings"
	"sync"
)

// index maps filters to subscriptions: a trie with one level of the filter
// per node, so that matching a topic visits only the nodes on its path (and
// their '+' and '#' branches), never every subscription.
type index struct {
	mu    sync.RWMutex
	root  node
	count int
}

type node struct {
	children map[string]*node
	plus     *node // '+' child
	hash     *node // '#' child
	subs     []*subscription
	groups   map[string]*group
	parent   *node
	level    string
}

func (n *node) empty() bool {
	return len(n.subs) == 0 && len(n.groups) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// add inserts s under its filter.
func (x *index) add(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(s)
}

func (x *index) addLocked(s *subscription) {
	n := x.nodeFor(s.filter)
	s.node, s.pos = n, len(n.subs)
	n.subs = append(n.subs, s)
	x.count++
}

// nodeFor returns the node of filter, creating the path to it.
func (x *index) nodeFor(filter string) *node {
	n := &x.root
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		n = n.child(level)
	}
	return n
}

// addWithRetained inserts s and returns the retained messages it matches,
// atomically with respect to route: a message published meanwhile is
// either among them or routed to s, never both, never neither.
func (x *index) addWithRetained(s *subscription, r *retainStore) []*stored {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.addLocked(s)
	return r.matching(s.filter)
}

// addMember adds s to the queue group of that name on its filter.
func (x *index) addMember(s *subscription, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.nodeFor(s.filter)
	g := n.groups[name]
	if g == nil {
		g = &group{name: name, filter: s.filter, node: n}
		if n.groups == nil {
			n.groups = make(map[string]*group)
		}
		n.groups[name] = g
	}
	g.mu.Lock()
	s.group, s.gpos = g, len(g.members)
	g.members = append(g.members, s)
	g.mu.Unlock()
	x.count++
}

// group returns the queue group name on filter, or nil.
func (x *index) group(filter, name string) *group {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := &x.root
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch level {
		case "+":
			n = n.plus
		case "#":
			n = n.hash
		default:
			n = n.children[level]
		}
		if n == nil {
			return nil
		}
	}
	return n.groups[name]
}

// removeMember takes s out of its group, and the group out of the index
// when it was the last member.
func (x *index) removeMember(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	g := s.group
	g.mu.Lock()
	last := len(g.members) - 1
	moved := g.members[last]
	g.members[s.gpos] = moved
	moved.gpos = s.gpos
	g.members[last] = nil
	g.members = g.members[:last]
	empty := last == 0
	g.mu.Unlock()
	x.count--
	if empty && g.node != nil {
		n := g.node
		delete(n.groups, g.name)
		g.node = nil
		x.prune(n)
	}
}

func (n *node) child(level string) *node {
	var c **node
	switch level {
	case "+":
		c = &n.plus
	case "#":
		c = &n.hash
	default:
		if ch := n.children[level]; ch != nil {
			return ch
		}
		ch := &node{parent: n, level: level}
		if n.children == nil {
			n.children = make(map[string]*node)
		}
		n.children[level] = ch
		return ch
	}
	if *c == nil {
		*c = &node{parent: n, level: level}
	}
	return *c
}

// remove deletes s and prunes nodes left empty.
func (x *index) remove(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := s.node
	if n == nil {
		return
	}
	last := len(n.subs) - 1
	moved := n.subs[last]
	n.subs[s.pos] = moved
	moved.pos = s.pos
	n.subs[last] = nil
	n.subs = n.subs[:last]
	s.node = nil
	x.count--
	x.prune(n)
}

// prune removes n and its ancestors while they are empty.
func (x *index) prune(n *node) {
	for n.parent != nil && n.empty() {
		p := n.parent
		switch {
		case p.plus == n:
			p.plus = nil
		case p.hash == n:
			p.hash = nil
		default:
			delete(p.children, n.level)
		}
		n = p
	}
}

// matches is the result of a match.
type matches struct {
	subs   []*subscription // direct subscriptions
	groups []*group
	nodes  int // trie nodes with direct subscriptions that matched
}

func (m *matches) reset() {
	clear(m.subs)
	clear(m.groups)
	m.subs, m.groups, m.nodes = m.subs[:0], m.groups[:0], 0
}

// match collects the direct subscriptions and groups whose filter matches
// topic. More than one contributing node means one session may appear more
// than once. before, if not nil, runs under the same read lock first (the
// retained store is updated there, see addWithRetained).
func (x *index) match(topic string, m *matches, before func()) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if before != nil {
		before()
	}
	system := len(topic) > 0 && topic[0] == '$'
	x.root.match(topic, true, !system, m)
}

// match walks the levels of rest below n. wild is false at the root of a
// '$' topic, where '+' and '#' do not match.
func (n *node) match(rest string, more, wild bool, m *matches) {
	if wild && n.hash != nil {
		n.hash.collect(m)
	}
	if !more {
		n.collect(m)
		return
	}
	level, tail, tmore := strings.Cut(rest, "/")
	if c := n.children[level]; c != nil {
		c.match(tail, tmore, true, m)
	}
	if wild && n.plus != nil {
		n.plus.match(tail, tmore, true, m)
	}
}

func (n *node) collect(m *matches) {
	if len(n.subs) > 0 {
		m.subs = append(m.subs, n.subs...)
		m.nodes++
	}
	for _, g := range n.groups {
		m.groups = append(m.groups, g)
	}
}

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}
