// Package natscluster joins ferry brokers into one cluster through NATS.
//
// Every message published on a node goes to NATS, and every node with
// interest (this one included) delivers it to its subscribers, so each
// subscriber gets it once. A node subscribes on NATS only to the filters its
// own clients have. Queue groups become NATS queue subscriptions, so each
// message goes to one member across the cluster. Retained messages are
// broadcast to every node; a node that starts asks another for a snapshot.
// See docs/clustering.md.
package natscluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
	"github.com/nats-io/nats.go"
	"github.com/vmihailenco/msgpack/v5"
)

// DefaultPrefix is the first token of ferry's NATS subjects.
const DefaultPrefix = "ferry"

// Options configure a Cluster.
type Options struct {
	// URLs of the NATS servers (comma-separated list or several entries).
	URLs []string
	// Conn is an existing connection to use instead of dialling URLs; the
	// application keeps owning it (Close leaves it open).
	Conn *nats.Conn
	// NATSOptions are extra options for the connection Cluster makes
	// (credentials, TLS, name).
	NATSOptions []nats.Option
	// Prefix is the first token of every subject. Default "ferry".
	Prefix string
	// Buffer is how many incoming messages may wait for the broker; past it
	// NATS counts this node as a slow consumer and drops. Default 65536.
	Buffer int
	// SnapshotTimeout bounds the wait for another node's retained messages
	// at start. Default 2 s.
	SnapshotTimeout time.Duration
	// Logger, default slog.Default().
	Logger *slog.Logger
}

// Cluster is a broker.Cluster over NATS.
type Cluster struct {
	opts   Options
	nc     *nats.Conn
	owned  bool
	node   broker.ClusterNode
	origin string
	log    *slog.Logger

	ch   chan *nats.Msg
	done chan struct{}
	wg   sync.WaitGroup

	pubMu sync.Mutex // orders seq with the publish
	seq   uint64

	mu     sync.Mutex
	closed bool
	direct map[string][]*nats.Subscription    // filter → subscriptions
	groups map[[2]string][]*nats.Subscription // (filter, group) → queue subscriptions
	subGrp map[*nats.Subscription][2]string   // queue subscription → its group
	// missing holds the (filter, group) pairs (group "" for plain
	// subscriptions) whose NATS subscription failed or NATS refused
	missing map[[2]string]struct{}
	sys     []*nats.Subscription

	// dispatch only
	last      *dedupe   // last sequence per origin (and group)
	skipLogAt time.Time // when a message that is not ferry's was last logged

	sent, received, localOnly, dropped, subErrors atomic.Uint64
}

var _ broker.Cluster = (*Cluster)(nil)

// New returns a Cluster; the broker starts it (broker.Options.Cluster).
func New(o Options) (*Cluster, error) {
	if o.Conn == nil && len(o.URLs) == 0 {
		return nil, errors.New("natscluster: no NATS URLs and no connection")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !validToken(o.Prefix) {
		return nil, fmt.Errorf("natscluster: prefix %q: letters, digits, - and _ only", o.Prefix)
	}
	if o.Buffer <= 0 {
		o.Buffer = 1 << 16
	}
	if o.SnapshotTimeout <= 0 {
		o.SnapshotTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Cluster{
		opts:    o,
		log:     o.Logger,
		origin:  nats.NewInbox()[len(nats.InboxPrefix):],
		ch:      make(chan *nats.Msg, o.Buffer),
		done:    make(chan struct{}),
		direct:  make(map[string][]*nats.Subscription),
		groups:  make(map[[2]string][]*nats.Subscription),
		subGrp:  make(map[*nats.Subscription][2]string),
		missing: make(map[[2]string]struct{}),
		last:    newDedupe(dedupeMax, dedupeTTL),
	}, nil
}

// Start implements broker.Cluster.
func (c *Cluster) Start(n broker.ClusterNode) error {
	c.node = n
	if c.opts.Conn != nil {
		c.nc = c.opts.Conn
	} else {
		opts := append([]nats.Option{
			nats.Name("ferry"),
			nats.MaxReconnects(-1),
			nats.ReconnectBufSize(-1), // live traffic: no replay of a gap
			nats.RetryOnFailedConnect(true),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				c.log.Warn("natscluster: disconnected from NATS; publishing locally only", "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				c.log.Info("natscluster: reconnected to NATS", "server", nc.ConnectedUrlRedacted())
			}),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrSlowConsumer) {
					c.dropped.Add(1)
				}
				if errors.Is(err, nats.ErrPermissionViolation) && c.refused(err) {
					return
				}
				c.log.Warn("natscluster: NATS error", "err", err)
			}),
		}, c.opts.NATSOptions...)
		nc, err := nats.Connect(strings.Join(c.opts.URLs, ","), opts...)
		if err != nil {
			return err
		}
		c.nc, c.owned = nc, true
	}
	// retained updates first, so none falls between snapshot and updates
	sysR, err := c.nc.ChanSubscribe(c.sysSubject("retained"), c.ch)
	if err != nil {
		return err
	}
	c.snapshot()
	sysS, err := c.nc.QueueSubscribe(c.sysSubject("snapshot"), "snapshot", c.answerSnapshot)
	if err != nil {
		return err
	}
	c.sys = []*nats.Subscription{sysR, sysS}
	c.wg.Add(1)
	go c.dispatch()
	return nil
}

// Close implements broker.Cluster. Calls after the first do nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := append([]*nats.Subscription(nil), c.sys...)
	for _, ss := range c.direct {
		subs = append(subs, ss...)
	}
	for _, ss := range c.groups {
		subs = append(subs, ss...)
	}
	c.direct = map[string][]*nats.Subscription{}
	c.groups = map[[2]string][]*nats.Subscription{}
	c.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	close(c.done)
	c.wg.Wait()
	if c.owned && c.nc != nil {
		c.nc.Close()
	}
	return nil
}

// Connected implements broker.Cluster.
func (c *Cluster) Connected() bool { return c.nc != nil && c.nc.IsConnected() }

// Status implements broker.Cluster.
func (c *Cluster) Status() broker.ClusterStatus {
	s := broker.ClusterStatus{
		Connected:       c.Connected(),
		Sent:            c.sent.Load(),
		Received:        c.received.Load(),
		LocalOnly:       c.localOnly.Load(),
		Dropped:         c.dropped.Load(),
		SubscribeErrors: c.subErrors.Load(),
	}
	c.mu.Lock()
	s.Missing = len(c.missing)
	c.mu.Unlock()
	if s.Connected {
		s.Server = c.nc.ConnectedUrlRedacted()
	}
	return s
}

// Header keys.
const (
	hOrigin = "Ferry-Origin"
	hSeq    = "Ferry-Seq"
	hCodec  = "Ferry-Codec"
	hTopic  = "Ferry-Topic"
	hEnd    = "Ferry-End"
)

// Publish implements broker.Cluster.
func (c *Cluster) Publish(ctx context.Context, m broker.ClusterMessage, confirm bool) error {
	if !c.Connected() {
		c.localOnly.Add(1)
		return errors.New("natscluster: not connected to NATS")
	}
	msg := &nats.Msg{Subject: c.subject(m.Topic), Data: m.Data, Header: nats.Header{}}
	msg.Header.Set(hCodec, codecName(m.Codec))
	c.pubMu.Lock()
	c.seq++
	msg.Header.Set(hOrigin, c.origin)
	msg.Header.Set(hSeq, strconv.FormatUint(c.seq, 10))
	err := c.nc.PublishMsg(msg)
	if err == nil && m.Retain {
		// the retained value for every node (live delivery is the message
		// above, sent already: a failure here is logged, not returned)
		r := &nats.Msg{Subject: c.sysSubject("retained"), Data: m.Data, Header: nats.Header{}}
		r.Header.Set(hCodec, codecName(m.Codec))
		r.Header.Set(hTopic, m.Topic)
		if rerr := c.nc.PublishMsg(r); rerr != nil {
			c.log.Warn("natscluster: retained value not broadcast", "topic", m.Topic, "err", rerr)
		}
	}
	c.pubMu.Unlock()
	if err != nil {
		c.localOnly.Add(1)
		return err
	}
	c.sent.Add(1)
	if confirm {
		// the server has it once a flush round trip returns
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		if err := c.nc.FlushWithContext(ctx); err != nil {
			// sent, perhaps: not to be delivered locally as well
			return fmt.Errorf("%w: %v", broker.ErrNotConfirmed, err)
		}
	}
	return nil
}

// Interest implements broker.Cluster.
func (c *Cluster) Interest(filter string, on bool) error {
	return c.interest([2]string{filter, ""}, on)
}

// Group implements broker.Cluster.
func (c *Cluster) Group(filter, name string, on bool) error {
	return c.interest([2]string{filter, name}, on)
}

// confirmTimeout bounds the wait for the server to take (or refuse) new
// subscriptions.
const confirmTimeout = 2 * time.Second

// interest subscribes to (on) or unsubscribes from the subjects of k, a
// filter and a queue group ("" for none). For on it waits for the server's
// answer: an error is a subscription that could not be made, or that the
// server refused (permissions). While the connection is down nothing is
// refused: nats.go makes the subscriptions again when it reconnects.
func (c *Cluster) interest(k [2]string, on bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if on {
			return errors.New("natscluster: closed")
		}
		return nil
	}
	if !on {
		if k[1] == "" {
			for _, s := range c.direct[k[0]] {
				_ = s.Unsubscribe()
			}
			delete(c.direct, k[0])
		} else {
			for _, s := range c.groups[k] {
				_ = s.Unsubscribe()
				delete(c.subGrp, s)
			}
			delete(c.groups, k)
		}
		delete(c.missing, k)
		c.mu.Unlock()
		return nil
	}
	before := c.nc.LastError()
	subjects := c.filterSubjects(k[0])
	var errs []error
	for _, subj := range subjects {
		var s *nats.Subscription
		var err error
		if k[1] == "" {
			s, err = c.nc.ChanSubscribe(subj, c.ch)
		} else {
			s, err = c.nc.ChanQueueSubscribe(subj, queueName(k[0], k[1]), c.ch)
		}
		if err != nil {
			c.failed(k, subj, err)
			errs = append(errs, err)
			continue
		}
		if k[1] == "" {
			c.direct[k[0]] = append(c.direct[k[0]], s)
		} else {
			c.groups[k] = append(c.groups[k], s)
			c.subGrp[s] = k
		}
	}
	c.mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("natscluster: subscribing to %q: %w", k[0], errors.Join(errs...))
	}
	// the server answers a refused subscription with an error before it
	// answers the flush's ping; nats.go records it as the last error first
	if c.nc.FlushTimeout(confirmTimeout) != nil {
		return nil
	}
	if last := c.nc.LastError(); last != nil && last != before && errors.Is(last, nats.ErrPermissionViolation) {
		if m := refusedSubject.FindStringSubmatch(last.Error()); m != nil && slices.Contains(subjects, m[1]) {
			c.subErrors.Add(1)
			c.log.Error("natscluster: NATS refused a subscription; the sub is refused",
				"filter", k[0], "group", k[1], "subject", m[1], "err", last)
			return fmt.Errorf("natscluster: NATS refused the subscription to %q: %w", k[0], last)
		}
	}
	return nil
}

// failed records that the subscription of k (a filter and a group, "" for
// none) on subject could not be made; c.mu is held.
func (c *Cluster) failed(k [2]string, subject string, err error) {
	c.subErrors.Add(1)
	c.missing[k] = struct{}{}
	c.log.Error("natscluster: subscribe failed; the filter gets only this node's messages",
		"filter", k[0], "group", k[1], "subject", subject, "err", err)
}

// subscribedOn returns the filters and groups ("" for none) of this node
// with a subscription on subject in queue (or none); c.mu is held. NATS
// permissions are per subject, so a refusal applies to all of them.
func (c *Cluster) subscribedOn(subject, queue string) [][2]string {
	var ks [][2]string
	for k, ss := range c.groups {
		for _, s := range ss {
			if s.Subject == subject && s.Queue == queue {
				ks = append(ks, k)
				break
			}
		}
	}
	if queue == "" {
		for f, ss := range c.direct {
			for _, s := range ss {
				if s.Subject == subject {
					ks = append(ks, [2]string{f, ""})
					break
				}
			}
		}
	}
	return ks
}

// The subject and queue of a subscription NATS refused, in its error.
var (
	refusedSubject = regexp.MustCompile(`Subscription to "(\S+)"`)
	refusedQueue   = regexp.MustCompile(`using queue "(\S+)"`)
)

// refused records the subscription a permissions violation names, if it
// is one of this node's filters or groups, and reports whether it was.
func (c *Cluster) refused(err error) bool {
	m := refusedSubject.FindStringSubmatch(err.Error())
	if m == nil {
		return false
	}
	var queue string
	if q := refusedQueue.FindStringSubmatch(err.Error()); q != nil {
		queue = q[1]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ks := c.subscribedOn(m[1], queue)
	if len(ks) == 0 {
		return false
	}
	c.subErrors.Add(1)
	for _, k := range ks {
		c.missing[k] = struct{}{}
		c.log.Error("natscluster: NATS refused a subscription; the filter gets only this node's messages",
			"filter", k[0], "group", k[1], "subject", m[1], "err", err)
	}
	return true
}

// dispatch hands incoming messages to the broker, in the order NATS
// delivered them, once per node (and once per queue group).
func (c *Cluster) dispatch() {
	defer c.wg.Done()
	retained := c.sysSubject("retained")
	for {
		select {
		case <-c.done:
			return
		case m := <-c.ch:
			c.handle(m, retained)
		}
	}
}

// handle hands one message from NATS to the broker. A panic there is
// logged with its stack and ends only that message's handling.
func (c *Cluster) handle(m *nats.Msg, retained string) {
	defer c.recovered("dispatch", m)
	codec := parseCodec(m.Header.Get(hCodec))
	if m.Subject == retained {
		c.node.SetRetained(broker.ClusterMessage{Topic: m.Header.Get(hTopic), Data: m.Data, Codec: codec, Retain: true})
		return
	}
	topic, ok := c.topic(m.Subject)
	if !ok {
		c.skip(m, "subject is no topic's")
		return
	}
	key := m.Header.Get(hOrigin)
	seq, err := strconv.ParseUint(m.Header.Get(hSeq), 10, 64)
	if key == "" || err != nil || seq == 0 {
		c.skip(m, "no "+hOrigin+" and "+hSeq+" headers")
		return
	}
	c.mu.Lock()
	g, isGroup := c.subGrp[m.Sub]
	c.mu.Unlock()
	if isGroup {
		key += "\x00" + g[0] + "\x00" + g[1]
	}
	// overlapping subscriptions bring a message more than once, in
	// order: deliver it the first time
	if !c.last.fresh(key, seq, time.Now()) {
		return
	}
	c.received.Add(1)
	cm := broker.ClusterMessage{Topic: topic, Data: m.Data, Codec: codec}
	if isGroup {
		c.node.DeliverGroup(g[0], g[1], cm)
	} else {
		c.node.Deliver(cm)
	}
}

// recovered, deferred where a message from NATS is handled, keeps a panic
// there from ending the process: it is logged once with its stack.
func (c *Cluster) recovered(where string, m *nats.Msg) {
	if r := recover(); r != nil {
		c.log.Error("natscluster: recovered panic", "where", where, "subject", m.Subject, "panic", r, "stack", string(debug.Stack()))
	}
}

// skip logs, at debug and at most once a minute, a message on ferry's
// subjects that no ferry node sent.
func (c *Cluster) skip(m *nats.Msg, reason string) {
	if now := time.Now(); now.Sub(c.skipLogAt) >= time.Minute {
		c.skipLogAt = now
		c.log.Debug("natscluster: skipped a message that is not ferry's (more are not logged for a minute)", "subject", m.Subject, "reason", reason)
	}
}

// snapshot asks another node for its retained messages.
func (c *Cluster) snapshot() {
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(c.sysSubject("snapshot"), inbox, nil); err != nil {
		return
	}
	deadline := time.Now().Add(c.opts.SnapshotTimeout)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil || m.Header.Get("Status") != "" {
			return // timeout, or no other node
		}
		var entries [][3][]byte
		if err := msgpack.Unmarshal(m.Data, &entries); err == nil {
			for _, e := range entries {
				c.node.SetRetained(broker.ClusterMessage{Topic: string(e[0]), Codec: parseCodec(string(e[1])), Data: e[2], Retain: true})
			}
		}
		if m.Header.Get(hEnd) != "" {
			return
		}
	}
}

// answerSnapshot sends this node's retained messages, in chunks.
func (c *Cluster) answerSnapshot(req *nats.Msg) {
	defer c.recovered("snapshot answer", req) // on a goroutine of nats.go's, which does not recover
	if req.Reply == "" {
		return
	}
	const chunk = 256 << 10
	var entries [][3][]byte
	size := 0
	send := func(end bool) {
		b, _ := msgpack.Marshal(entries)
		m := &nats.Msg{Subject: req.Reply, Data: b, Header: nats.Header{}}
		if end {
			m.Header.Set(hEnd, "1")
		}
		_ = c.nc.PublishMsg(m)
		entries, size = entries[:0], 0
	}
	for _, r := range c.node.Retained() {
		entries = append(entries, [3][]byte{[]byte(r.Topic), []byte(codecName(r.Codec)), r.Data})
		size += len(r.Topic) + len(r.Data) + 16
		if size >= chunk {
			send(false)
		}
	}
	send(true)
}

func codecName(c protocol.Codec) string {
	if c == protocol.Msgpack {
		return "m"
	}
	return "j"
}

func parseCodec(s string) protocol.Codec {
	if s == "m" {
		return protocol.Msgpack
	}
	return protocol.JSON
}

// Subjects. A topic level becomes a NATS token as it is when it consists
// of letters, digits, '-' and '_'; any other level becomes '~' followed by
// its base64url encoding. Tokens of the first kind never start with '~', so
// the mapping is injective, and no encoded token is '*' or '>'. Filters map
// '+' to '*' and '#' to '>' (plus the subject without it, since '#' also
// matches zero levels). The broker's own subjects live under
// "<prefix>_sys", which no topic subject can match.

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func token(level string) string {
	if validToken(level) {
		return level
	}
	return "~" + base64.RawURLEncoding.EncodeToString([]byte(level))
}

// Subject returns the NATS subject of a topic.
func Subject(prefix, topic string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		b.WriteByte('.')
		b.WriteString(token(level))
	}
	return b.String()
}

// FilterSubjects returns the NATS subjects that together cover a filter.
func FilterSubjects(prefix, filter string) []string {
	var b strings.Builder
	b.WriteString(prefix)
	for rest, more := filter, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		switch level {
		case "#":
			// '#' matches zero levels too
			if b.Len() == len(prefix) {
				return []string{prefix + ".>"}
			}
			return []string{b.String(), b.String() + ".>"}
		case "+":
			b.WriteString(".*")
		default:
			b.WriteByte('.')
			b.WriteString(token(level))
		}
	}
	return []string{b.String()}
}

// Topic returns the topic of a NATS subject, or false.
func Topic(prefix, subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, prefix+".")
	if !ok {
		return "", false
	}
	var b strings.Builder
	for first := true; ; first = false {
		tok, tail, more := strings.Cut(rest, ".")
		if !first {
			b.WriteByte('/')
		}
		if enc, ok := strings.CutPrefix(tok, "~"); ok {
			raw, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				return "", false
			}
			b.Write(raw)
		} else {
			b.WriteString(tok)
		}
		if !more {
			return b.String(), true
		}
		rest = tail
	}
}

func (c *Cluster) subject(topic string) string { return Subject(c.opts.Prefix, topic) }
func (c *Cluster) filterSubjects(f string) []string {
	return FilterSubjects(c.opts.Prefix, f)
}
func (c *Cluster) topic(subject string) (string, bool) { return Topic(c.opts.Prefix, subject) }
func (c *Cluster) sysSubject(name string) string       { return c.opts.Prefix + "_sys." + name }

// queueName is a group's NATS queue name. A ferry group is its name and
// its filter, so both are in it (NATS would join same-named queues on
// overlapping subjects).
func queueName(filter, group string) string {
	return "g" + base64.RawURLEncoding.EncodeToString([]byte(filter+"\x00"+group))
}
