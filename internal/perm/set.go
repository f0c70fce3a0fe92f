package perm

import "strings"

// Set is a compiled permission set: what one connection may publish and
// subscribe to. It is immutable and safe for concurrent use. A nil Set, like
// an empty one, permits nothing.
type Set struct {
	pub, sub tree
}

// anySet is immutable, so every caller of Any may share it.
var anySet = &Set{pub: tree{allowAll: true}, sub: tree{allowAll: true}}

// Any returns the Set that permits everything, topics starting with '$'
// included: the permissions of a connection to a broker with no
// authentication. (The broker refuses publishing to '$' topics itself,
// whatever the permissions.)
func Any() *Set { return anySet }

// CanPublish reports whether topic, a valid publish topic
// (protocol.ValidateTopic), may be published to: an allowed pub filter
// matches it and no denied one does. An empty topic and one holding '+' or
// '#' are refused.
func (s *Set) CanPublish(topic string) bool {
	if s == nil || topic == "" || strings.IndexByte(topic, '+') >= 0 || strings.IndexByte(topic, '#') >= 0 {
		return false
	}
	return s.pub.permits(topic)
}

// CanSubscribe reports whether filter, a valid filter
// (protocol.ValidateFilter), may be subscribed to (or unsubscribed from):
// whether every topic it can match is permitted. That holds when one allowed
// sub filter matches every topic filter matches (filter is a subset of it)
// and no denied sub filter matches any of them (filter overlaps none).
func (s *Set) CanSubscribe(filter string) bool {
	if s == nil || filter == "" {
		return false
	}
	return s.sub.permitsAll(filter)
}
