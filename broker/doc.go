// Package broker is ferry's pub/sub broker core.
//
// A Broker is an http.Handler: mount it on a mux and WebSocket clients
// speaking the ferry protocol (see docs/protocol.md) can subscribe and
// publish. The embedding application publishes and subscribes in-process
// with Publish and Subscribe.
//
// Concurrency: every exported method is safe for concurrent use. Each
// connection has one reader (gws's read loop, which decodes frames and
// routes publishes on the publisher's goroutine) and at most one writer
// goroutine, started when frames are queued and ended when the queue is
// empty. Outbound queues are bounded in bytes (Options.QueueBytes); a
// publish never waits on a slow subscriber for longer than Options.MaxStall.
//
// Lock order: Broker.mu, then index.mu, then a queue's mu (outQueue.mu or
// Subscription.mu), then lockedConn.wmu. No lock is held while calling an
// in-process handler.
package broker
