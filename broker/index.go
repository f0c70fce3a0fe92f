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
	parent   *node
	level    string
}

func (n *node) empty() bool {
	return len(n.subs) == 0 && len(n.children) == 0 && n.plus == nil && n.hash == nil
}

// add inserts s under its filter.
func (x *index) add(s *subscription) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := &x.root
	for rest, more := s.filter, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		n = n.child(level)
	}
	s.node, s.pos = n, len(n.subs)
	n.subs = append(n.subs, s)
	x.count++
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

// match appends to dst the subscriptions whose filter matches topic and
// returns it with the number of trie nodes that contributed (more than one
// means one owner may appear more than once).
func (x *index) match(topic string, dst []*subscription) ([]*subscription, int) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	nodes := 0
	system := len(topic) > 0 && topic[0] == '$'
	dst = x.root.match(topic, true, !system, dst, &nodes)
	return dst, nodes
}

// match walks the levels of rest below n. wild is false at the root of a
// '$' topic, where '+' and '#' do not match.
func (n *node) match(rest string, more, wild bool, dst []*subscription, nodes *int) []*subscription {
	if wild && n.hash != nil && len(n.hash.subs) > 0 {
		dst = append(dst, n.hash.subs...)
		*nodes++
	}
	if !more {
		if len(n.subs) > 0 {
			dst = append(dst, n.subs...)
			*nodes++
		}
		return dst
	}
	level, tail, tmore := strings.Cut(rest, "/")
	if c := n.children[level]; c != nil {
		dst = c.match(tail, tmore, true, dst, nodes)
	}
	if wild && n.plus != nil {
		dst = n.plus.match(tail, tmore, true, dst, nodes)
	}
	return dst
}

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.count
}
