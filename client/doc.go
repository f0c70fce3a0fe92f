// Package client is the Go client of the ferry broker.
//
// A Client stays connected: when its connection is lost it reconnects with
// exponential backoff and full jitter, subscribes again, and resumes its
// session so that acknowledged subscriptions lose nothing. Publishes wait
// in a bounded buffer while disconnected and are sent again after a
// reconnect until the broker acknowledges them (at-least-once). Each
// subscription's handler runs on its own goroutine, in order, with its
// queue bounded in messages and bytes. A plain subscription whose queue is
// full holds the connection's reads (for up to Options.MaxHold per
// message), so the broker holds the publishers: a handler that falls
// behind slows the flow down to it instead of losing messages (and slows
// the other subscriptions of its client meanwhile; see
// Options.DropWhenFull). Acknowledged subscriptions ack only when the
// handler is done, so they slow the flow down the same way, through the
// broker's window.
//
// Every method of Client, Subscription and Message is safe for concurrent
// use. Callbacks (OnStatus, OnError, PublishCallback) run one at a time, in
// order, on a goroutine of their own. Close may be called from a handler or
// a callback; Drain, which waits for the handlers, may not.
package client
