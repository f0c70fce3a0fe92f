package broker

import (
	"cmp"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ferry-io/ferry/internal/perm"
	"github.com/ferry-io/ferry/protocol"
	"golang.org/x/time/rate"
)

// applyLimits sets the connection's publish rate and subscription limit:
// the broker's, or those of l where it sets them. It is called at the
// upgrade and, on the reader, for an auth refresh: a limiter that exists
// keeps its tokens (a raised burst fills up at the rate).
func (c *conn) applyLimits(l *Limits) {
	o := c.b.opts
	r, burst := o.PubRate, o.PubBurst
	c.subs = o.MaxSubscriptions
	if l != nil {
		if l.PubRate > 0 {
			r, burst = l.PubRate, 0
		}
		burst = cmp.Or(l.PubBurst, burst)
		c.subs = cmp.Or(l.MaxSubscriptions, c.subs)
	}
	if r <= 0 {
		c.lim = nil
		return
	}
	burst = cmp.Or(burst, max(int(r), 1))
	if c.lim == nil {
		c.lim = rate.NewLimiter(rate.Limit(r), burst)
		return
	}
	now := time.Now()
	c.lim.SetLimitAt(now, rate.Limit(r))
	c.lim.SetBurstAt(now, burst)
}

// refresh handles an auth frame: a fresh token for the same subject
// replaces the connection's credential, its permissions, limits and
// expiry, and subscriptions the new permissions no longer allow are
// removed (an err "forbidden" each). Options.Authenticate checks the token
// as it checks a request (given one that carries only the token, in an
// Authorization header, and the connection's remote address). A token
// that is refused, or names another subject, changes nothing: err
// "unauthorized".
func (c *conn) refresh(token string) *protocol.Error {
	b := c.b
	if b.opts.Authenticate == nil {
		return protocol.Errorf(protocol.CodeUnauthorized, "auth: this broker does not authenticate connections")
	}
	if len(token) > maxCredential {
		b.stats.authFailures.Add(1)
		return protocol.Errorf(protocol.CodeUnauthorized, "auth: the token is over %d bytes", maxCredential)
	}
	r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Authorization": {"Bearer " + token}}, RemoteAddr: c.remote}
	id, err := b.opts.Authenticate(r)
	if err == nil && id != nil && !id.Expires.IsZero() && !time.Now().Before(id.Expires) {
		err = fmt.Errorf("token expired at %s", id.Expires.UTC().Format(time.RFC3339))
	}
	if err != nil {
		b.stats.authFailures.Add(1)
		return protocol.Errorf(protocol.CodeUnauthorized, "auth: %s", headerSafe(err.Error()))
	}
	if id == nil {
		id = &Identity{}
	}
	if id.Subject != c.id.Subject {
		b.stats.authFailures.Add(1)
		return protocol.Errorf(protocol.CodeUnauthorized, "auth: the token's subject is not the connection's: a connection keeps its identity")
	}
	var perms *perm.Set
	if b.opts.Authorize == nil {
		if perms, err = b.permissions(id); err != nil {
			b.stats.authFailures.Add(1)
			return protocol.Errorf(protocol.CodeUnauthorized, "auth: invalid permissions: %s", headerSafe(err.Error()))
		}
	}
	if c.exp != nil && !c.exp.Stop() {
		// the old credential expired meanwhile: the connection is closing
		return protocol.Errorf(protocol.CodeUnauthorized, "auth: the connection's token expired before the refresh")
	}
	c.id, c.perm = id, perms
	c.applyLimits(id.Limits)
	c.armExpiry()
	c.revoke()
	return nil
}

// revoke removes the subscriptions the connection's permissions no longer
// allow, each with an err "forbidden" naming its filter (and group).
func (c *conn) revoke() {
	if c.b.opts.Authorize == nil && c.perm == nil {
		return
	}
	for _, fg := range c.sess.filters() {
		filter, group := fg[0], fg[1]
		if c.allowed(Subscribe, filter) || !c.sess.unsubscribe(c, subKey(filter, group)) {
			continue
		}
		c.b.stats.forbidden.Add(1)
		c.reply(revokedErr(filter, group))
	}
}

// revokedErr tells a client that its subscription to filter (in group)
// was removed.
func revokedErr(filter, group string) *protocol.Frame {
	return &protocol.Frame{Op: protocol.OpErr, Code: protocol.CodeForbidden, Topic: filter, Group: group,
		Reason: fmt.Sprintf("sub: %q is no longer allowed: the subscription was removed", filter)}
}
