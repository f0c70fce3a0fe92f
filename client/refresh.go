package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ferry-io/ferry/protocol"
)

// refreshLoop keeps conn's credential fresh: before the token expires
// (when it is a JWT with an exp claim) it asks the TokenSource for a new
// one and sends it in-band (an auth frame), so the connection and its
// subscriptions go on. A refresh that fails is reported and tried again,
// until the token expires and the broker closes the connection (4001):
// the client then reconnects, asking the TokenSource again.
func (c *Client) refreshLoop(conn *connection) {
	token := conn.token
	exp, ok := tokenExpiry(token)
	if !ok {
		return
	}
	retry := time.Duration(0)
	for {
		wait := refreshLead(time.Until(exp))
		if retry > 0 {
			wait = retry
		}
		t := time.NewTimer(wait)
		select {
		case <-conn.closed:
			t.Stop()
			return
		case <-t.C:
		}
		fresh, err := c.refresh(conn)
		if err != nil {
			c.reportError(fmt.Errorf("client: token refresh: %w", err))
			// again, more often as the expiry nears
			retry = min(max(time.Until(exp)/4, 100*time.Millisecond), 10*time.Second)
			continue
		}
		retry = 0
		if exp, ok = tokenExpiry(fresh); !ok {
			return
		}
	}
}

// refresh asks the TokenSource for a token and sends it on conn.
func (c *Client) refresh(conn *connection) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-conn.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	token, err := c.opts.TokenSource(ctx)
	if err != nil {
		return "", fmt.Errorf("token source: %w", err)
	}
	f, err := c.request(ctx, func(id uint64) []byte {
		return protocol.Append(c.opts.Codec, nil, &protocol.Frame{Op: protocol.OpAuth, ID: id, HasID: true, Token: token})
	})
	if err != nil {
		return "", err
	}
	if f == nil {
		return "", ErrNotConnected
	}
	return token, nil
}

// refreshLead is how long before an expiry that far off the token is
// refreshed: a fifth of the time left, at least a second and at most a
// minute before, and never later than halfway.
func refreshLead(left time.Duration) time.Duration {
	lead := min(max(left/5, time.Second), time.Minute, left/2)
	return max(left-lead, 0)
}

// tokenExpiry reads the exp claim of a JWT, without verifying it (the
// broker does): the client needs only to know when to refresh. ok is false
// for a token that is not a JWT or has no exp.
func tokenExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	secs, err := claims.Exp.Float64()
	if err != nil || secs <= 0 || secs > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(secs*1e9)), true
}

// brokerError handles an err frame that answers no request: a
// subscription the broker removed (its permissions no longer allow it,
// after a token refresh or on resuming a session) ends here too, and
// every such error is reported through OnError.
func (c *Client) brokerError(f *protocol.Frame) {
	err := &Error{Code: f.Code, Reason: f.Reason}
	if f.Code == protocol.CodeForbidden && f.Topic != "" {
		c.mu.Lock()
		s := c.subs[f.Topic+"\x00"+f.Group]
		c.mu.Unlock()
		if s != nil {
			s.drop()
			c.reportError(fmt.Errorf("client: subscription %q removed by the broker: %w", f.Topic, err))
			return
		}
	}
	c.reportError(err)
}
