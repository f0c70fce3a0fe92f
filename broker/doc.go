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
// # Lock order
//
// A goroutine holding one of these locks takes only locks later in the
// list, and never two of one kind (two sessions' mu, say):
//
//  1. conn.handling (held by a connection's reader while it handles a frame)
//  2. interestState.sync
//  3. session.mu
//  4. subscription.emu
//  5. Broker.mu
//  6. interest.mu
//  7. index.mu (read or write)
//  8. group.mu
//  9. retainStore.mu
//  10. outQueue.mu
//  11. Subscription.mu
//  12. lockedConn.wmu
//  13. lingerSet.mu
//
// These are all the pairs the code takes, A → B meaning B is taken while A
// is held, with one call path each:
//
//   - conn.handling → interestState.sync, interest.mu: conn.subscribe →
//     interest.sync
//   - conn.handling → session.mu: conn.handle → session.ack
//   - conn.handling → subscription.emu: conn.publish → Broker.route →
//     Broker.routeLocal → subscription.push → subscription.pushEarly
//   - conn.handling → Broker.mu: conn.subscribe → session.subscribe →
//     Broker.trackAcks
//   - conn.handling → index.mu: Broker.routeLocal → index.match
//   - conn.handling → group.mu: Broker.routeLocal → Broker.deliverGroup →
//     group.pick
//   - conn.handling → retainStore.mu: Broker.route → retainStore.set
//   - conn.handling → outQueue.mu: conn.reply → conn.sendFrame →
//     outQueue.pushReply
//   - conn.handling → Subscription.mu: Broker.routeLocal → subscription.push
//     → Subscription.send
//   - interestState.sync → interest.mu: interest.sync
//   - session.mu → Broker.mu: session.removeLocked → Broker.trackAcks (also
//     interest.add, for a filter's last subscription)
//   - session.mu → interest.mu: session.subscribe → interest.add
//   - session.mu → index.mu: session.subscribe → index.addWithRetained
//   - session.mu → group.mu: session.removeLocked → index.removeMember
//   - session.mu → retainStore.mu: session.subscribe →
//     index.addWithRetained → retainStore.matching
//   - session.mu → outQueue.mu: session.pumpLocked → session.sendNewLocked →
//     conn.sendStored; session.attach → Broker.attachSession's first
//   - session.mu → Subscription.mu: session.ack (from Subscription.run) →
//     session.pumpLocked → Subscription.sendStored
//   - subscription.emu → outQueue.mu: subscription.activate →
//     conn.sendStored
//   - subscription.emu → Subscription.mu: subscription.activate →
//     Subscription.sendStored
//   - Broker.mu → interest.mu: interest.add, once the broker is closed
//   - index.mu → group.mu: index.addMember, index.removeMember
//   - index.mu → retainStore.mu: index.addWithRetained; index.match's
//     before (a retained publish); clusterNode.SetRetained
//   - gws's write lock → lockedConn.wmu: gws writing its close frame
//     through lockedConn.Write (gws calls the handler's methods without it,
//     and the broker never calls gws's write methods)
//
// interest.mu, group.mu, retainStore.mu, outQueue.mu, Subscription.mu,
// lockedConn.wmu and lingerSet.mu take no other lock. Also:
//
//   - No lock is held while an in-process handler runs (Subscription.run)
//     or Options.CheckOrigin or Options.Authenticate does; Options.Authorize
//     runs under conn.handling only, and the credential's expiry timer
//     closes its connection holding no lock.
//   - The Cluster is called holding at most conn.handling and
//     interestState.sync: Publish from Broker.route (under conn.handling for
//     a client's publish), Interest and Group from interest.sync (under
//     interestState.sync, and conn.handling for a client's sub); Start,
//     Status and Close holding none. ClusterNode's methods take neither.
//   - interest.add may take Broker.mu, so it is never called under Broker.mu
//     or a lock after it (its callers hold session.mu).
//   - Waits under a lock: a connection's reader, under conn.handling, for
//     room in its own queue (conn.sendFrame), for full queues within the
//     stall budget (Broker.routeLocal, Broker.deliverGroup) and for the
//     Cluster; interestState.sync across Cluster.Interest and Group;
//     lockedConn.wmu across a socket write (bounded by Options.WriteTimeout,
//     or closeGrace once closing). Shutdown takes each conn.handling holding
//     no lock, after b.closed stops new frames; stalls end at b.done. No
//     WaitGroup is waited on under a lock.
//   - Subscription.Unsubscribe and conn.cleanup run in a sync.Once, which
//     a concurrent caller waits for; both are called holding no lock.
//     cleanup waits there for the writer goroutine (outQueue.writers), which
//     takes outQueue.mu, lockedConn.wmu and lingerSet.mu, one at a time.
//   - The Logger may be called holding conn.handling, interestState.sync,
//     session.mu or subscription.emu (Broker.encodeMsg logs an unsendable
//     message): its handler must not call the broker.
package broker
