package broker

import (
	"container/list"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxRateIPs bounds the client addresses whose connection rate is tracked;
// the least recently seen is forgotten first.
const maxRateIPs = 10000

// connLimiter limits new connections per client IP (Options.ConnRate), with
// a bounded LRU of per-IP token buckets.
type connLimiter struct {
	rate    rate.Limit
	burst   int
	proxies []*net.IPNet

	mu    sync.Mutex
	ips   map[string]*list.Element
	order list.List // of *ipLimiter, most recent first
}

type ipLimiter struct {
	ip string
	l  *rate.Limiter
}

func newConnLimiter(o Options) (*connLimiter, error) {
	if o.ConnRate <= 0 {
		return nil, nil
	}
	cl := &connLimiter{rate: rate.Limit(o.ConnRate), burst: o.ConnBurst, ips: make(map[string]*list.Element)}
	if cl.burst == 0 {
		cl.burst = max(int(o.ConnRate), 1)
	}
	for _, p := range o.TrustedProxies {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			return nil, fmt.Errorf("ferry: Options.TrustedProxies: %q: want an IP address or a CIDR block", p)
		}
		cl.proxies = append(cl.proxies, n)
	}
	return cl, nil
}

// allow reports whether a new connection from r's client may be made now,
// and if not how long to wait.
func (cl *connLimiter) allow(r *http.Request) (bool, time.Duration) {
	ip := cl.clientIP(r)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var l *rate.Limiter
	if e, ok := cl.ips[ip]; ok {
		cl.order.MoveToFront(e)
		l = e.Value.(*ipLimiter).l
	} else {
		l = rate.NewLimiter(cl.rate, cl.burst)
		cl.ips[ip] = cl.order.PushFront(&ipLimiter{ip, l})
		if cl.order.Len() > maxRateIPs {
			old := cl.order.Back()
			cl.order.Remove(old)
			delete(cl.ips, old.Value.(*ipLimiter).ip)
		}
	}
	now := time.Now()
	res := l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// clientIP is the request's peer address or, when that is a trusted proxy,
// the last address in X-Forwarded-For that is not one.
func (cl *connLimiter) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !cl.trusted(host) {
		return host
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if net.ParseIP(h) == nil {
			break // not an address: stop trusting the chain here
		}
		if !cl.trusted(h) {
			return h
		}
		host = h
	}
	return host
}

func (cl *connLimiter) trusted(host string) bool {
	ip := net.ParseIP(host)
	for _, n := range cl.proxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// refuseRate answers a request over the connection rate: 429 with
// Retry-After.
func refuseRate(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	http.Error(w, fmt.Sprintf("ferry: too many new connections from this address: retry in %d s", secs), http.StatusTooManyRequests)
}
