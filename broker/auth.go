package broker

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-io/ferry/internal/perm"
)

// Identity is who a connection is, as Options.Authenticate found: the
// subject of its credential (a JWT's "sub", a static token's identity) and
// the credential's other claims. Options.Authorize decides with it what
// the connection may do.
type Identity struct {
	// Subject identifies the client (a device id, a user name).
	Subject string
	// Claims are the credential's other claims (of a JWT, say), for
	// Authorize; nil when there are none.
	Claims map[string]any
	// Expires is when the credential expires: the broker closes the
	// connection then, with close code 4001 "token expired". Zero: never.
	Expires time.Time
	// Permissions, when set, are what the identity may do (a token's
	// "ferry" claim); nil means what Options.ACL grants its Subject, and
	// nothing if it grants nothing. Used when Options.Authorize is nil.
	Permissions *Permissions
	// Limits, when set, override the broker's limits for this connection
	// (a token's "ferry.limits" claim).
	Limits *Limits
}

// Limits are one identity's own limits, overriding the broker's Options
// for its connections; a zero field keeps the broker's. In JSON (a token's
// "ferry.limits" claim): {"pub_rate": 10, "pub_burst": 20, "max_subs": 50}.
type Limits struct {
	// PubRate and PubBurst replace Options.PubRate and Options.PubBurst:
	// publishes per second, and at once. PubBurst alone keeps the broker's
	// rate.
	PubRate  float64 `json:"pub_rate,omitempty"`
	PubBurst int     `json:"pub_burst,omitempty"`
	// MaxSubscriptions replaces Options.MaxSubscriptions.
	MaxSubscriptions int `json:"max_subs,omitempty"`
}

// Action is what a connection asks to do on a topic, for Options.Authorize.
type Action uint8

const (
	// Publish: a pub on a topic.
	Publish Action = iota + 1
	// Subscribe: a sub (or unsub) of a filter, of any kind: plain, queue
	// group or acknowledged; the retained messages it brings follow.
	Subscribe
)

func (a Action) String() string {
	switch a {
	case Publish:
		return "pub"
	case Subscribe:
		return "sub"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ErrNoCredential is what Credential returns for a request that carries
// none; an Authenticate that returns it (wrapped or not) gets the request
// the 401 of a missing credential.
var ErrNoCredential = errors.New("ferry: no credential: send Authorization: Bearer, a ferry.bearer.* subprotocol or ?token=")

// BearerSubprotocol is the prefix of the subprotocol entry that carries a
// token from a browser, which cannot set headers: "ferry.bearer." and the
// token in base64url without padding, offered beside ferry.v1.json or
// ferry.v1.msgpack. The broker never echoes it.
const BearerSubprotocol = "ferry.bearer."

// maxCredential bounds a token, in bytes, wherever it comes from.
const maxCredential = 16 << 10

// Credential returns the token a WebSocket request carries: in an
// "Authorization: Bearer" header, a ferry.bearer.* subprotocol entry, or
// the query parameter "token". A request with none gets ErrNoCredential;
// one with a malformed credential, one over 16 KiB, or tokens in two
// places that disagree, gets an error saying so.
func Credential(r *http.Request) (string, error) {
	var found []string
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		if len(h) > 1 {
			return "", errors.New("more than one Authorization header")
		}
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errors.New("the Authorization header is not Bearer <token>")
		}
		found = append(found, strings.TrimSpace(tok))
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			enc, ok := strings.CutPrefix(strings.TrimSpace(p), BearerSubprotocol)
			if !ok {
				continue
			}
			if len(enc) > maxCredential*4/3+4 {
				return "", fmt.Errorf("the token is over %d bytes", maxCredential)
			}
			tok, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil || len(tok) == 0 {
				return "", errors.New("the " + BearerSubprotocol + "* subprotocol entry is not base64url without padding")
			}
			found = append(found, string(tok))
		}
	}
	if q := r.URL.Query()["token"]; len(q) > 0 {
		found = append(found, q...)
	}
	if len(found) == 0 {
		return "", ErrNoCredential
	}
	for _, t := range found {
		if len(t) > maxCredential {
			return "", fmt.Errorf("the token is over %d bytes", maxCredential)
		}
		if t != found[0] {
			return "", errors.New("the request carries different tokens in different places")
		}
	}
	return found[0], nil
}

// refuseUnauthenticated answers a request whose credential was refused:
// 401, with a WWW-Authenticate challenge (RFC 6750) and a one-line reason.
// A missing credential's reason is the error's text (ErrNoCredential's,
// or the words of an error wrapping it: "...; or present a client
// certificate").
func refuseUnauthenticated(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrNoCredential) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
		http.Error(w, oneLine(err.Error()), http.StatusUnauthorized)
		return
	}
	reason := headerSafe(err.Error())
	w.Header().Set("WWW-Authenticate", `Bearer realm="ferry", error="invalid_token", error_description="`+reason+`"`)
	http.Error(w, "ferry: invalid token: "+reason, http.StatusUnauthorized)
}

// oneLine cuts s at its first line break.
func oneLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// headerSafe makes s fit in a quoted header value: printable ASCII without
// quotes or backslashes, at most 200 bytes.
func headerSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 200 {
			b.WriteString("...")
			break
		}
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\'')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// isBearer reports whether a subprotocol entry carries a token.
func isBearer(p string) bool { return strings.HasPrefix(p, BearerSubprotocol) }

// Permissions are what an identity may publish to (Pub) and subscribe to
// (Sub): lists of allowed and denied filters, which may hold the templates
// {sub} (the identity's Subject) and {claim:NAME} (a string claim), each
// filling a whole topic level. Deny beats allow; nothing allowed means
// denied; a subscription's filter must lie inside an allowed filter and
// overlap no denied one; '$' topics need a rule of their own ("#" does not
// cover them). A template whose value is empty, starts with '$' or holds
// '/', '+', '#' or NUL drops its rule. In JSON, "pub" and "sub" are each a
// list of allowed filters or {"allow": [...], "deny": [...]}.
type Permissions = perm.Rules

// PermissionLists are the allowed and denied filters of one action.
type PermissionLists = perm.Lists

// ACLEntry grants Permissions to the identities whose Subject matches
// Identity, a pattern where '*' stands for any run of characters ("dev-*",
// "*"). An identity matched by several entries gets all their rules
// together (deny still beats allow). In JSON:
// {"identity": "dev-*", "pub": [...], "sub": {"allow": [...], "deny": [...]}}.
type ACLEntry struct {
	Identity string `json:"identity"`
	Permissions
}

// permissions compiles what id may do: its own Permissions (a token's
// "ferry" claim), else what the ACL grants its subject; nothing when
// neither says anything.
func (b *Broker) permissions(id *Identity) (*perm.Set, error) {
	pid := perm.Identity{Subject: id.Subject, Claims: id.Claims}
	if id.Permissions != nil {
		return perm.Compile(*id.Permissions, pid)
	}
	var r Permissions
	for _, e := range b.opts.ACL {
		if globMatch(e.Identity, id.Subject) {
			r.Pub.Allow = append(r.Pub.Allow, e.Permissions.Pub.Allow...)
			r.Pub.Deny = append(r.Pub.Deny, e.Permissions.Pub.Deny...)
			r.Sub.Allow = append(r.Sub.Allow, e.Permissions.Sub.Allow...)
			r.Sub.Deny = append(r.Sub.Deny, e.Permissions.Sub.Deny...)
		}
	}
	return perm.Compile(r, pid)
}

// globMatch reports whether s matches pattern, where '*' matches any run
// of characters (none included) and every other character itself.
func globMatch(pattern, s string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == s
	}
	if !strings.HasPrefix(s, pattern[:star]) {
		return false
	}
	s, rest := s[star:], pattern[star+1:]
	for i := 0; i <= len(s); i++ { // the run the star stands for
		if globMatch(rest, s[i:]) {
			return true
		}
	}
	return false
}
