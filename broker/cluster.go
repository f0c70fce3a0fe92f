package broker

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ferry-io/ferry/protocol"
)

// Cluster joins several brokers into one: a message published on any node
// reaches the matching subscribers of every node, once each. The default
// (Options.Cluster nil) is a single node; package natscluster implements
// it over NATS.
//
// The broker calls Interest and Group as its subscriptions come and go
// (reference counted: on for the first subscription of a filter, off after
// the last), so that a node receives only the traffic it needs. It calls
// them outside its locks (but for the subscribing connection's own; see the
// package doc's lock order), one call at a time per filter (and group), so
// they may do I/O.
type Cluster interface {
	// Start connects the cluster. n is how messages from the cluster reach
	// this node.
	Start(n ClusterNode) error
	// Publish sends a message published on this node to every node with
	// interest, this one included (its subscribers get it from the
	// cluster, so that each gets it once). With confirm it returns only
	// once the cluster has confirmed it. An error means the message was
	// not sent: the broker then delivers it to this node's subscribers
	// only.
	Publish(ctx context.Context, m ClusterMessage, confirm bool) error
	// Interest reports that this node gained (on) or lost its
	// subscriptions on filter. An error for on means the cluster cannot
	// bring this node the filter's traffic: the subscription that asked
	// for it is refused (err internal) and the interest taken back.
	Interest(filter string, on bool) error
	// Group reports that this node gained or lost members of the queue
	// group name on filter; an error for on refuses the member as
	// Interest does.
	Group(filter, name string, on bool) error
	// Connected reports whether messages flow through the cluster now.
	Connected() bool
	// Status describes the cluster for health checks.
	Status() ClusterStatus
	// Close leaves the cluster.
	Close() error
}

// ClusterMessage is a message crossing nodes.
type ClusterMessage struct {
	Topic  string
	Data   []byte
	Codec  protocol.Codec
	Retain bool
}

// ClusterStatus describes a node's cluster connection.
type ClusterStatus struct {
	Connected bool   `json:"connected"`
	Server    string `json:"server,omitempty"`
	// Sent and Received count messages through the cluster; LocalOnly
	// counts messages published while the cluster was unreachable, which
	// reached this node's subscribers only.
	Sent      uint64 `json:"sent"`
	Received  uint64 `json:"received"`
	LocalOnly uint64 `json:"local_only"`
	Dropped   uint64 `json:"dropped"`
	// SubscribeErrors counts subscriptions of this node's filters and
	// groups that the cluster failed to make or refused; Missing is how
	// many filters and groups lack theirs now: their subscribers get only
	// what is published on this node.
	SubscribeErrors uint64 `json:"subscribe_errors"`
	Missing         int    `json:"missing"`
}

// ClusterNode is how a Cluster hands messages to its broker.
//
// The broker checks what arrives as strictly as a client's publish: a valid
// topic without wildcards of at most Options.MaxTopicBytes, Data one valid
// value of its codec (JSON also valid UTF-8) of at most
// Options.MaxFrameBytes. Anything else is dropped and counted
// (Stats.ClusterRejected), so that whatever else publishes on the
// cluster's transport cannot send subscribers what a client could not.
// Topics starting with '$' are accepted: they come from Broker.Publish on
// another node (the embedding application is the broker), and the
// cluster's transport cannot tell such a node from any other of its
// clients.
type ClusterNode interface {
	// Deliver routes a message from the cluster to this node's direct
	// (non-group) subscriptions.
	Deliver(m ClusterMessage)
	// DeliverGroup routes a message from the cluster to one member of the
	// queue group name on filter on this node.
	DeliverGroup(filter, name string, m ClusterMessage)
	// SetRetained stores a retained message published on any node.
	SetRetained(m ClusterMessage)
	// Retained returns this node's retained messages, for a node that
	// starts later.
	Retained() []ClusterMessage
}

// clusterNode is the broker as a ClusterNode.
type clusterNode struct{ b *Broker }

func (n clusterNode) Deliver(m ClusterMessage) {
	if !n.accept("message", m) {
		return
	}
	d := newDelivery(n.b, m.Topic, m.Codec, m.Data)
	defer d.release()
	n.b.routeLocal(context.Background(), d, false, false)
}

func (n clusterNode) DeliverGroup(filter, name string, m ClusterMessage) {
	if !n.accept("group message", m) {
		return
	}
	if !protocol.Match(filter, m.Topic) { // the '$' rule, which subjects lack
		return
	}
	d := newDelivery(n.b, m.Topic, m.Codec, m.Data)
	defer d.release()
	if g := n.b.index.group(filter, name); g != nil {
		clock, ackClock := n.b.newClocks(false)
		defer clock.stop()
		defer ackClock.stop()
		n.b.deliverGroup(context.Background(), g, d, &clock, &ackClock)
	}
}

func (n clusterNode) SetRetained(m ClusterMessage) {
	if !n.accept("retained message", m) {
		return
	}
	st := &stored{topic: m.Topic, codec: m.Codec, data: m.Data}
	// under the index's read lock, as route does: see addWithRetained
	n.b.index.mu.RLock()
	defer n.b.index.mu.RUnlock()
	_ = n.b.retained.set(n.b, st)
}

func (n clusterNode) Retained() []ClusterMessage {
	r := &n.b.retained
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ClusterMessage, 0, len(r.msgs))
	for _, m := range r.msgs {
		out = append(out, ClusterMessage{Topic: m.topic, Data: m.data, Codec: m.codec, Retain: true})
	}
	return out
}

// accept checks a message from the cluster (see ClusterNode); one it
// refuses is counted and logged at debug, at most once a second.
func (n clusterNode) accept(what string, m ClusterMessage) bool {
	b := n.b
	var reason string
	if err := protocol.ValidateTopic(m.Topic, b.opts.MaxTopicBytes); err != nil {
		reason = err.Reason
	} else if len(m.Data) > b.opts.MaxFrameBytes {
		reason = fmt.Sprintf("data is %d bytes, over the frame limit of %d", len(m.Data), b.opts.MaxFrameBytes)
	} else if err := (&Message{Data: m.Data, Codec: m.Codec}).validate(); err != nil {
		reason = err.Error()
	} else if m.Codec == protocol.JSON && !utf8.Valid(m.Data) {
		// a client's JSON is valid UTF-8 as every text frame is
		reason = "data is not valid UTF-8"
	} else {
		return true
	}
	total := b.stats.clusterRejected.Add(1)
	now := time.Now().UnixNano()
	if last := b.stats.clusterRejectLog.Load(); now-last >= int64(time.Second) && b.stats.clusterRejectLog.CompareAndSwap(last, now) {
		topic := m.Topic
		if len(topic) > 64 {
			topic = topic[:64] + "…"
		}
		b.log.Debug("ferry: invalid "+what+" from the cluster dropped (more are not logged for a second)",
			"topic", strconv.Quote(topic), "reason", reason, "rejected", total)
	}
	return false
}

// interest counts this node's subscriptions per filter and per group, and
// tells the cluster about the first and the last: add counts (under
// session.mu; it may take Broker.mu), sync tells the cluster (under no lock
// but a reader's conn.handling; see the lock order in doc.go). The first
// subscription of a filter waits for its sync and is refused if it fails;
// the last one's sync runs in the background.
type interest struct {
	b    *Broker
	c    Cluster
	mu   sync.Mutex
	keys map[interestKey]*interestState
	// filters whose count went to zero, for the background sync
	dirty   map[interestKey]struct{}
	syncing bool
}

type interestKey struct{ filter, group string }

type interestState struct {
	n       int        // subscriptions now (interest.mu)
	sync    sync.Mutex // held while the cluster is told, one call at a time
	applied bool       // what the cluster was last told, successfully (sync)
}

// add counts delta subscriptions of filter (in group, "" for none).
func (in *interest) add(filter, group string, delta int) {
	if in.c == nil {
		return
	}
	k := interestKey{filter, group}
	in.mu.Lock()
	if in.keys == nil {
		in.keys = make(map[interestKey]*interestState)
		in.dirty = make(map[interestKey]struct{})
	}
	st := in.keys[k]
	if st == nil {
		st = &interestState{}
		in.keys[k] = st
	}
	st.n += delta
	start := false
	if st.n == 0 {
		in.dirty[k] = struct{}{}
		start = !in.syncing
		in.syncing = true
	}
	in.mu.Unlock()
	if start {
		// under Broker.mu, so that Shutdown's wait for the background
		// goroutines never races with a new one; once the broker is
		// closed, the cluster's Close takes every interest back
		b := in.b
		b.mu.Lock()
		if !b.closed.Load() {
			b.bgWG.Add(1)
			go b.loop("cluster interest", in.syncDirty)
		} else {
			in.mu.Lock()
			in.syncing = false
			in.mu.Unlock()
		}
		b.mu.Unlock()
	}
}

// sync tells the cluster whether this node has subscriptions of filter in
// group now, if that changed since it was last told. An error is the
// cluster's refusal of interest that this node needs.
func (in *interest) sync(filter, group string) error {
	if in.c == nil {
		return nil
	}
	k := interestKey{filter, group}
	in.mu.Lock()
	st := in.keys[k]
	in.mu.Unlock()
	if st == nil {
		return nil
	}
	st.sync.Lock()
	defer st.sync.Unlock()
	in.mu.Lock()
	want := st.n > 0
	in.mu.Unlock()
	var err error
	if want != st.applied {
		if group == "" {
			err = in.c.Interest(filter, want)
		} else {
			err = in.c.Group(filter, group, want)
		}
		switch {
		case err == nil || !want:
			// a failed "off" leaves traffic this node drops: not worth a retry
			st.applied = want
		default:
			// take back what the failed "on" may have made
			if group == "" {
				_ = in.c.Interest(filter, false)
			} else {
				_ = in.c.Group(filter, group, false)
			}
		}
	}
	in.mu.Lock()
	if st.n == 0 && !st.applied && in.keys[k] == st {
		delete(in.keys, k)
	}
	in.mu.Unlock()
	if err != nil && want {
		return err
	}
	if err != nil {
		in.b.log.Debug("ferry: cluster: leaving a filter", "filter", filter, "group", group, "err", err)
	}
	return nil
}

// syncDirty tells the cluster about the filters that lost their last
// subscription, until there are none.
func (in *interest) syncDirty() {
	for {
		in.mu.Lock()
		var k interestKey
		found := false
		for k = range in.dirty {
			found = true
			break
		}
		if !found {
			in.syncing = false
			in.mu.Unlock()
			return
		}
		delete(in.dirty, k)
		in.mu.Unlock()
		_ = in.sync(k.filter, k.group)
	}
}
