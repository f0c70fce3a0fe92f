package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originRule decides which browser origins may connect (Options.CheckOrigin,
// Options.AllowedOrigins, or the same-host default).
type originRule struct {
	any   bool
	exact map[string]bool // "scheme://host:port", lower case, default ports dropped
	globs []originGlob
}

// originGlob is "scheme://*.domain[:port]": any subdomain, at any depth.
type originGlob struct{ scheme, suffix, port string }

// newOriginRule compiles Options.AllowedOrigins.
func newOriginRule(list []string) (*originRule, error) {
	r := &originRule{exact: make(map[string]bool)}
	for _, o := range list {
		o = strings.TrimSpace(o)
		if o == "*" {
			r.any = true
			continue
		}
		scheme, host, port, err := splitOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("ferry: Options.AllowedOrigins: %q: %v", o, err)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, fmt.Errorf("ferry: Options.AllowedOrigins: %q: a glob is scheme://*.domain", o)
			}
			r.globs = append(r.globs, originGlob{scheme, "." + rest, port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("ferry: Options.AllowedOrigins: %q: '*' may only start the host, as in https://*.example.com", o)
		}
		r.exact[scheme+"://"+net.JoinHostPort(host, port)] = true
	}
	return r, nil
}

// splitOrigin parses "scheme://host[:port]" into its parts, lower case,
// with the scheme's default port filled in.
func splitOrigin(o string) (scheme, host, port string, err error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", "", "", err
	}
	if u.Scheme == "" || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", "", "", fmt.Errorf("not an origin (scheme://host[:port])")
	}
	scheme = strings.ToLower(u.Scheme)
	host, port = strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return scheme, host, port, nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "443"
	case "http", "ws":
		return "80"
	}
	return ""
}

// allowed reports whether a request from origin (a browser's Origin
// header) may connect.
func (r *originRule) allowed(origin string) bool {
	if r.any {
		return true
	}
	scheme, host, port, err := splitOrigin(origin)
	if err != nil {
		return false // "null" among them
	}
	if r.exact[scheme+"://"+net.JoinHostPort(host, port)] {
		return true
	}
	for _, g := range r.globs {
		if g.scheme == scheme && g.port == port && strings.HasSuffix(host, g.suffix) {
			return true
		}
	}
	return false
}

// sameHost is the default rule: the origin's host and port are the ones
// the request was sent to.
func sameHost(req *http.Request, origin string) bool {
	scheme, host, port, err := splitOrigin(origin)
	if err != nil {
		return false
	}
	rh, rp, err := net.SplitHostPort(req.Host)
	if err != nil {
		rh, rp = req.Host, "" // no port: the origin's scheme's default
		if rp = defaultPort(scheme); rp == "" {
			return false
		}
	}
	rh = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(rh, "["), "]"))
	return host == rh && port == rp
}

// checkOrigin applies the origin rule to a WebSocket request, returning
// the reason for a refusal ("" when allowed).
func (b *Broker) checkOrigin(req *http.Request) string {
	if b.opts.CheckOrigin != nil {
		if !b.opts.CheckOrigin(req) {
			return "ferry: origin not allowed"
		}
		return ""
	}
	origin := req.Header.Get("Origin")
	if origin == "" {
		return "" // not a browser
	}
	ok := false
	if b.origins != nil {
		ok = b.origins.allowed(origin)
	} else {
		ok = sameHost(req, origin)
	}
	if ok {
		return ""
	}
	if b.origins == nil {
		return fmt.Sprintf("ferry: origin %s not allowed: only pages from %s may connect (see Options.AllowedOrigins, --allowed-origins)", truncate(origin, 100), truncate(req.Host, 100))
	}
	return fmt.Sprintf("ferry: origin %s not allowed", truncate(origin, 100))
}
