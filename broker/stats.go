package broker

import "sync/atomic"

// Stats is a snapshot of the broker's counters.
type Stats struct {
	// Connections open now, and accepted since the start.
	Connections      int64
	ConnectionsTotal uint64
	// Subscriptions held now (connections and in-process).
	Subscriptions int64
	// Published counts messages routed; Delivered counts messages queued
	// to subscribers (a message to ten subscribers counts ten).
	Published uint64
	Delivered uint64
	// Dropped counts messages dropped for full queues under the Drop
	// policy (and by in-process subscriptions), and messages that could not
	// be sent in a subscriber's codec (once per codec).
	Dropped uint64
	// Stalls counts the times a publish waited for room in a full queue.
	Stalls uint64
	// Redelivered counts deliveries of acknowledged subscriptions made
	// again (ack wait expired, nack, resumed session, group hand-over).
	Redelivered uint64
	// Sessions counts sessions with an id held now (connected or not);
	// Retained the retained messages.
	Sessions int
	Retained int
	// AckPending and AckInflight count messages in acknowledged
	// subscriptions' queues and windows now.
	AckPending  int
	AckInflight int
	// Cluster is the cluster's status, when the broker is in one.
	Cluster *ClusterStatus `json:",omitempty"`
	// SlowConsumers counts connections closed for a full queue under the
	// Disconnect policy.
	SlowConsumers uint64
	// BadFrames counts client frames answered with bad_frame or bad_topic.
	BadFrames uint64
	// ProtocolErrors counts connections closed for a frame header that
	// RFC 6455 forbids (1002) or that announced a message over
	// MaxFrameBytes (1009), refused before it was parsed.
	ProtocolErrors uint64
	// ClusterRejected counts messages and retained values from the cluster
	// dropped because a client could not have published them (see
	// ClusterNode).
	ClusterRejected uint64
	// AuthFailures counts WebSocket requests refused with 401.
	AuthFailures uint64
	// ConnectionsRefused counts requests refused for MaxConnections (503)
	// or ConnRate (429), and RateLimited the publishes refused for PubRate.
	ConnectionsRefused uint64
	RateLimited        uint64
	// Forbidden counts pub, sub and unsub requests Authorize refused, and
	// TokenExpired the connections closed (4001) when their credential
	// expired.
	Forbidden    uint64
	TokenExpired uint64
	// Panics counts panics recovered in the broker's goroutines.
	Panics uint64
	// QueuedBytes is the sum of the connections' outbound queues now, and
	// MaxQueuedBytes the largest of them.
	QueuedBytes    int64
	MaxQueuedBytes int64
}

type counters struct {
	connections      atomic.Int64
	connectionsTotal atomic.Uint64
	subscriptions    atomic.Int64
	published        atomic.Uint64
	delivered        atomic.Uint64
	dropped          atomic.Uint64
	stalls           atomic.Uint64
	redelivered      atomic.Uint64
	slowConsumers    atomic.Uint64
	badFrames        atomic.Uint64
	protocolErrors   atomic.Uint64
	panics           atomic.Uint64
	authFailures     atomic.Uint64
	connRefused      atomic.Uint64
	rateLimited      atomic.Uint64
	forbidden        atomic.Uint64
	tokenExpired     atomic.Uint64
	clusterRejected  atomic.Uint64
	clusterRejectLog atomic.Int64 // unix ns of the last log of a rejection
}

// Stats returns a snapshot of the broker's counters.
func (b *Broker) Stats() Stats {
	s := Stats{
		Connections:        b.stats.connections.Load(),
		ConnectionsTotal:   b.stats.connectionsTotal.Load(),
		Subscriptions:      b.stats.subscriptions.Load(),
		Published:          b.stats.published.Load(),
		Delivered:          b.stats.delivered.Load(),
		Dropped:            b.stats.dropped.Load(),
		Stalls:             b.stats.stalls.Load(),
		Redelivered:        b.stats.redelivered.Load(),
		Retained:           b.retained.len(),
		SlowConsumers:      b.stats.slowConsumers.Load(),
		BadFrames:          b.stats.badFrames.Load(),
		ProtocolErrors:     b.stats.protocolErrors.Load(),
		ClusterRejected:    b.stats.clusterRejected.Load(),
		Panics:             b.stats.panics.Load(),
		AuthFailures:       b.stats.authFailures.Load(),
		ConnectionsRefused: b.stats.connRefused.Load(),
		RateLimited:        b.stats.rateLimited.Load(),
		Forbidden:          b.stats.forbidden.Load(),
		TokenExpired:       b.stats.tokenExpired.Load(),
	}
	if b.cluster != nil {
		cs := b.cluster.Status()
		s.Cluster = &cs
	}
	b.mu.Lock()
	s.Sessions = len(b.sessions)
	acks := make([]*session, 0, len(b.ackSess))
	for ss := range b.ackSess {
		acks = append(acks, ss)
	}
	b.mu.Unlock()
	for _, ss := range acks {
		p, i := ss.queuedMessages()
		s.AckPending += p
		s.AckInflight += i
	}
	for _, c := range b.snapshotConns() {
		n := int64(c.q.size())
		s.QueuedBytes += n
		s.MaxQueuedBytes = max(s.MaxQueuedBytes, n)
	}
	return s
}
