package perm

import "strings"

// tree is one compiled Lists: a trie of the allowed filters and one of the
// denied filters.
type tree struct {
	allow, deny node
	// allowAll and denyAll stand for every topic, those starting with '$'
	// included, which no filter can express: allowAll is Any's, denyAll a
	// denied template whose first level cannot be filled.
	allowAll, denyAll bool
}

// node is one level of a trie of filters. The root stands for the place
// before the first level. A filter leads from the root through one child per
// level (lits for a name, plus for '+') to the node of its last level, which
// has end set; a final '#' sets hash on the node before it instead ("a/#" on
// node a, "#" on the root). Every node but an empty root has end or hash set
// on itself or below.
type node struct {
	// The children for names: in names and kids while there are few
	// (comparing a few strings is quicker than hashing one), in lits
	// beyond.
	names []string
	kids  []*node
	lits  map[string]*node
	plus  *node
	end   bool // a filter ends here
	hash  bool // a filter goes on from here with '#'
	// plain is kept on the root only: a filter in the trie can match a
	// topic that does not start with '$'.
	plain bool
}

// maxKids is the most children for names kept in a node's slices.
const maxKids = 8

// child returns the child for a name, or nil.
func (n *node) child(name string) *node {
	if n.lits != nil {
		return n.lits[name]
	}
	for i, s := range n.names {
		if s == name {
			return n.kids[i]
		}
	}
	return nil
}

// addChild returns the child for a name, made if need be.
func (n *node) addChild(name string) *node {
	if c := n.child(name); c != nil {
		return c
	}
	c := &node{}
	switch {
	case n.lits != nil:
		n.lits[name] = c
	case len(n.names) < maxKids:
		n.names = append(n.names, name)
		n.kids = append(n.kids, c)
	default:
		n.lits = make(map[string]*node, 2*maxKids)
		for i, s := range n.names {
			n.lits[s] = n.kids[i]
		}
		n.lits[name] = c
		n.names, n.kids = nil, nil
	}
	return c
}

// cut splits off the first level of s. last reports that there is no level
// after it.
func cut(s string) (level, rest string, last bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], false
	}
	return s, "", true
}

// isSys reports whether a level, taken as the first, makes a topic the
// broker's. Wildcards at the first level do not match it (protocol.Match).
func isSys(level string) bool { return len(level) > 0 && level[0] == '$' }

// insert adds a valid filter to the trie rooted at n.
func (n *node) insert(filter string) {
	if first, _, _ := cut(filter); !isSys(first) {
		n.plain = true
	}
	for {
		level, rest, last := cut(filter)
		if level == "#" {
			n.hash = true
			return
		}
		var c *node
		if level == "+" {
			if n.plus == nil {
				n.plus = &node{}
			}
			c = n.plus
		} else {
			c = n.addChild(level)
		}
		n = c
		if last {
			n.end = true
			return
		}
		filter = rest
	}
}

// The walks below take the levels still to look at (s, and done when there
// are none) and whether n is the root, where wildcards do not match a level
// starting with '$'. Each visits a trie node at most once: a node's levels
// from the root are fixed, so at most one way through s leads to it.

// matches reports whether a filter in the trie under n matches the topic s.
func (n *node) matches(s string, done, root bool) bool {
	if done { // never at the root: no topic has zero levels
		return n.end || n.hash
	}
	level, rest, last := cut(s)
	wild := !root || !isSys(level)
	if n.hash && wild {
		return true
	}
	if c := n.child(level); c != nil && c.matches(rest, last, false) {
		return true
	}
	return wild && n.plus != nil && n.plus.matches(rest, last, false)
}

// covers reports whether one filter in the trie under n matches every topic
// the filter s matches.
func (n *node) covers(s string, done, root bool) bool {
	if done { // never at the root: no topic has zero levels
		return n.end || n.hash
	}
	level, rest, last := cut(s)
	wild := !root || !isSys(level)
	if n.hash && wild {
		return true
	}
	switch level {
	case "#":
		// s matches this level's topic and all below it: only a '#' here
		// does too. At the root there is no topic of zero levels, so "#"
		// is also "+/#".
		return root && n.plus != nil && n.plus.hash
	case "+":
		// only '+' or '#' matches every name
		return n.plus != nil && n.plus.covers(rest, last, false)
	}
	if c := n.child(level); c != nil && c.covers(rest, last, false) {
		return true
	}
	return wild && n.plus != nil && n.plus.covers(rest, last, false)
}

// overlaps reports whether a filter in the trie under n matches a topic
// that the filter s matches too.
func (n *node) overlaps(s string, done, root bool) bool {
	if done { // never at the root: no topic has zero levels
		return n.end || n.hash
	}
	level, rest, last := cut(s)
	wild := !root || !isSys(level)
	if n.hash && wild {
		return true
	}
	switch level {
	case "#":
		// s matches every topic below here: it overlaps any filter under
		// n, which exists unless n is an empty root. At the root, '#' does
		// not match '$' topics.
		if root {
			return n.plain
		}
		return true
	case "+":
		if n.plus != nil && n.plus.overlaps(rest, last, false) {
			return true
		}
		for i, name := range n.names {
			if (!root || !isSys(name)) && n.kids[i].overlaps(rest, last, false) {
				return true
			}
		}
		for name, c := range n.lits {
			if (!root || !isSys(name)) && c.overlaps(rest, last, false) {
				return true
			}
		}
		return false
	}
	if c := n.child(level); c != nil && c.overlaps(rest, last, false) {
		return true
	}
	return wild && n.plus != nil && n.plus.overlaps(rest, last, false)
}

// permits reports whether the topic is allowed and not denied.
func (t *tree) permits(topic string) bool {
	if t.denyAll || !(t.allowAll || t.allow.matches(topic, false, true)) {
		return false
	}
	return !t.deny.matches(topic, false, true)
}

// permitsAll reports whether every topic the filter matches is allowed (by
// one allowed filter) and none is denied.
func (t *tree) permitsAll(filter string) bool {
	if t.denyAll || !(t.allowAll || t.allow.covers(filter, false, true)) {
		return false
	}
	return !t.deny.overlaps(filter, false, true)
}
