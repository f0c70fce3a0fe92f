package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// DefaultJWKSRefresh is how often a key set from a URL is fetched again.
const DefaultJWKSRefresh = time.Hour

const (
	// jwksTimeout bounds a fetch, from the request to the last byte.
	jwksTimeout = 10 * time.Second
	// jwksMaxBytes bounds a key set, fetched or read.
	jwksMaxBytes = 1 << 20
	// jwksFileCheck is how often, at most, a file's size and mtime are
	// looked at while tokens are verified.
	jwksFileCheck = 2 * time.Second
	// jwksUnknownKID is how often, at most, a token with an unknown kid
	// makes a URL be fetched again.
	jwksUnknownKID = time.Minute
)

// JWKSOptions configure a JWKS; the zero value is the defaults.
type JWKSOptions struct {
	// Refresh is how often a set from a URL is fetched again. Default
	// DefaultJWKSRefresh. (A file is looked at while tokens are verified,
	// at most every 2 seconds, and read again when its size or mtime
	// changed.)
	Refresh time.Duration
	// Client fetches a URL. Default http.DefaultClient. Each fetch is
	// bounded anyway: 10 seconds, 1 MiB.
	Client *http.Client
	// Logger receives failed refreshes (the last good set stays in force)
	// and changes of the set's key ids. Default slog.Default(), as it is
	// when a message is logged.
	Logger *slog.Logger
}

// JWKS is a JSON Web Key Set (RFC 7517), from a file or a URL, kept
// fresh, for JWTConfig.JWKS. Only its RSA, ECDSA (P-256/384/521) and
// Ed25519 keys whose "use" is "sig" or unset are used, and only for the
// asymmetric algorithms: symmetric ("oct") keys are left out, so that
// HS256/384/512 tokens are verified with JWTConfig.Secrets alone (a key
// set is usually public; a secret in it would let anyone sign). A key's
// "alg", when it has one, must be the token's; its kind must fit the
// token's algorithm in any case (an RSA key never verifies an ES256
// token). Private key material in the set is ignored.
//
// A file is read again when its size or mtime changed (looked at, at most
// every 2 seconds, while tokens are verified, and at once for a kid it
// does not hold) or on Reload; replace it by renaming a new file over it,
// so that a half-written set is never read. A URL is fetched every
// Refresh, on Reload, and for a token whose kid the set does not hold (at
// most once a minute; other tokens with unknown kids meanwhile are refused
// at once). A fetch is bounded to 10 seconds and 1 MiB. A set that cannot
// be read, fetched or parsed, or that holds no usable key, leaves the last
// good one in force, and is logged (without the URL's query or
// credentials). Its methods are safe for concurrent use.
type JWKS struct {
	src   string // the path or the URL
	name  string // src fit for logs and errors: a URL without its query or credentials
	isURL bool
	opts  JWKSOptions
	store *jwkset.MemoryJWKSet
	kf    keyfunc.Keyfunc
	// unknown allows the fetches of a URL that tokens with an unknown kid
	// make
	unknown *rate.Limiter

	mu      sync.Mutex // held while the set is loaded; guards the fields below
	loaded  bool       // a set is in force
	checked time.Time  // file: when its size and mtime were last looked at
	mod     time.Time  // file: the mtime and size last read
	size    int64
	kids    []string // of the set in force, for logs

	stop context.CancelFunc // ends the refresh of a URL
	done chan struct{}
}

// NewJWKS loads a key set from source: an https:// URL (http:// only on
// loopback), or a file. ctx bounds the first fetch. The set must load:
// otherwise the error says why. A URL's set is refreshed in the background
// until Close.
func NewJWKS(ctx context.Context, source string, o JWKSOptions) (*JWKS, error) {
	if source == "" {
		return nil, errors.New("auth: no JWKS file or URL")
	}
	s := &JWKS{src: source, name: source, opts: o, store: jwkset.NewMemoryStorage()}
	if strings.HasPrefix(source, "http://") || strings.HasPrefix(source, "https://") {
		u, err := url.Parse(source)
		if err != nil || u.Host == "" {
			return nil, errors.New("auth: the JWKS URL is not a valid URL")
		}
		s.isURL, s.name = true, redactURL(u)
		if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("auth: JWKS %s: plain http would let anyone on the way replace the keys: use https (http is accepted on loopback only)", s.name)
		}
		s.unknown = rate.NewLimiter(rate.Every(jwksUnknownKID), 1)
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: s.store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", s.name, err)
	}
	s.kf = kf
	if err := s.load(ctx, true); err != nil {
		return nil, fmt.Errorf("auth: JWKS %s: %w", s.name, err)
	}
	if s.isURL {
		every := o.Refresh
		if every <= 0 {
			every = DefaultJWKSRefresh
		}
		rctx, cancel := context.WithCancel(context.Background())
		s.stop, s.done = cancel, make(chan struct{})
		go s.refresh(rctx, every)
	}
	return s, nil
}

// Reload reads the file, or fetches the URL, now. On an error the last
// good set stays in force.
func (s *JWKS) Reload(ctx context.Context) error {
	if err := s.load(ctx, true); err != nil {
		return fmt.Errorf("auth: JWKS %s: %w", s.name, err)
	}
	return nil
}

// Close ends the refresh of a URL's set (the set stays in force). It may
// be called more than once.
func (s *JWKS) Close() {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
}

// KeyIDs returns the kids of the keys in force, in the set's order.
func (s *JWKS) KeyIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.kids)
}

func (s *JWKS) refresh(ctx context.Context, every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = s.loadLogged(ctx, true)
		}
	}
}

func (s *JWKS) logger() *slog.Logger {
	if s.opts.Logger != nil {
		return s.opts.Logger
	}
	return slog.Default()
}

// loadLogged is load, its failure logged (unless ctx ended).
func (s *JWKS) loadLogged(ctx context.Context, force bool) error {
	err := s.load(ctx, force)
	if err != nil && ctx.Err() == nil {
		s.logger().Warn("ferry: JWKS refresh failed; the last good set stays in force", "jwks", s.name, "err", err)
	}
	return err
}

// load reads the file (when force is set or its size or mtime changed) or
// fetches the URL, and puts the set in force if it is good.
func (s *JWKS) load(ctx context.Context, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b []byte
	if s.isURL {
		var err error
		if b, err = s.fetch(ctx); err != nil {
			return err
		}
	} else {
		s.checked = time.Now()
		st, err := os.Stat(s.src)
		if err != nil {
			return err
		}
		if !force && s.loaded && st.ModTime().Equal(s.mod) && st.Size() == s.size {
			return nil
		}
		// what was read is not read again until it changes, good or not
		s.mod, s.size = st.ModTime(), st.Size()
		if b, err = readBounded(s.src); err != nil {
			return err
		}
	}
	keys, kids, err := parseJWKS(b)
	if err != nil {
		return err
	}
	if err := s.store.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	if s.loaded && !slices.Equal(kids, s.kids) {
		s.logger().Info("ferry: JWKS changed", "jwks", s.name, "kids", kids)
	}
	s.loaded, s.kids = true, kids
	return nil
}

// fetch gets the URL's set, bounded in time and size. Its errors name
// neither the URL nor anything the server sent.
func (s *JWKS) fetch(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.src, nil)
	if err != nil {
		return nil, errors.New("the URL is not valid")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	client := s.opts.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // its URL may carry a query or credentials
			err = ue.Err
		}
		return nil, fmt.Errorf("fetch failed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch failed: HTTP status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch failed: %w", err)
	}
	if len(b) > jwksMaxBytes {
		return nil, fmt.Errorf("the set is over %d bytes", jwksMaxBytes)
	}
	return b, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, jwksMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > jwksMaxBytes {
		return nil, fmt.Errorf("the set is over %d bytes", jwksMaxBytes)
	}
	return b, nil
}

// parseJWKS reads a key set: {"keys": [...]}. Symmetric keys, keys of
// kinds or curves jwkset does not know (Ed448, say) and private key
// material are left out; any other key that is not valid refuses the
// whole set, as does a set left with no RSA, ECDSA or Ed25519 signing key.
func parseJWKS(b []byte) ([]jwkset.JWK, []string, error) {
	var set struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JSON Web Key Set: %v", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`not a JSON Web Key Set: no "keys" list`)
	}
	var keys []jwkset.JWK
	var kids []string
	usable := 0
	for i, raw := range *set.Keys {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, nil, fmt.Errorf("key %d: %v", i+1, err)
		}
		if m.KTY == "oct" {
			continue // never used: HMAC tokens are for the secrets
		}
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		switch {
		case errors.Is(err, jwkset.ErrUnsupportedKey):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("key %d (kid %q): %v", i+1, short(m.KID), err)
		}
		if keyKind(k.Key()) == "" {
			continue // an X25519 key, say: not for signatures
		}
		if m.USE == "" || m.USE == jwkset.UseSig {
			usable++
		}
		keys, kids = append(keys, k), append(kids, m.KID)
	}
	if usable == 0 {
		return nil, nil, errors.New("the set holds no RSA, ECDSA or Ed25519 signing key")
	}
	return keys, kids, nil
}

// keyError is a reason a JWKS gives for refusing a token; describe passes
// it to the client as it is.
type keyError string

func (e keyError) Error() string { return string(e) }

// keys returns the set's keys of the given kind ("RSA", "EC", "OKP") for
// the token: the one its kid names, or without a kid every one that fits
// its algorithm.
func (s *JWKS) keys(ctx context.Context, t *jwt.Token, kind string) ([]jwt.VerificationKey, error) {
	if !s.isURL {
		s.mu.Lock()
		due := time.Since(s.checked) >= jwksFileCheck
		s.mu.Unlock()
		if due {
			_ = s.loadLogged(ctx, false)
		}
	}
	got, err := s.kf.KeyfuncCtx(ctx)(t)
	if errors.Is(err, jwkset.ErrKeyNotFound) && s.again(ctx) {
		got, err = s.kf.KeyfuncCtx(ctx)(t)
	}
	rawKid, hasKid := t.Header["kid"]
	kid, _ := rawKid.(string)
	alg := t.Method.Alg()
	if err != nil {
		return nil, s.reason(ctx, err, rawKid, kid, alg)
	}
	all := []jwt.VerificationKey{got}
	if ks, ok := got.(jwt.VerificationKeySet); ok {
		all = ks.Keys
	}
	var out []jwt.VerificationKey
	for _, k := range all {
		if keyKind(k) == kind {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		if hasKid && len(all) == 1 {
			return nil, keyError(fmt.Sprintf("the key '%s' is %s, not one for %s", short(kid), describeKind(keyKind(all[0])), alg))
		}
		return nil, keyError("no key in the JWKS for " + alg)
	}
	return out, nil
}

// again loads the set once more for a kid it does not hold: a file if it
// changed; a URL if the limit allows. It reports whether to look again.
func (s *JWKS) again(ctx context.Context) bool {
	if !s.isURL {
		return s.loadLogged(ctx, false) == nil
	}
	if !s.unknown.Allow() {
		return false
	}
	return s.loadLogged(ctx, true) == nil
}

// reason says why keyfunc found no key for a token.
func (s *JWKS) reason(ctx context.Context, err error, rawKid any, kid, alg string) error {
	if _, isString := rawKid.(string); rawKid != nil && !isString {
		return keyError("the token's kid is not a string")
	}
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		return keyError(fmt.Sprintf("unknown key id (kid) '%s'", short(kid)))
	}
	if k, e := s.store.KeyRead(ctx, kid); e == nil {
		m := k.Marshal()
		if m.ALG != "" && m.ALG.String() != alg {
			return keyError(fmt.Sprintf("the key '%s' is for %s, not %s", short(kid), m.ALG, alg))
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			return keyError(fmt.Sprintf("the key '%s' is not for signatures (use '%s')", short(kid), m.USE))
		}
	}
	return keyError("the token's key cannot be used")
}

// keyKind names the kind of a public key as JWT.keys does: "RSA", "EC",
// "OKP", or "" for any other.
func keyKind(k any) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "EC"
	case ed25519.PublicKey:
		return "OKP"
	}
	return ""
}

func describeKind(kind string) string {
	switch kind {
	case "RSA":
		return "an RSA key"
	case "EC":
		return "an ECDSA key"
	case "OKP":
		return "an Ed25519 key"
	}
	return "a key of another kind"
}

// short cuts a kid for a message.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// redactURL is u without credentials, query or fragment.
func redactURL(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}

// loopbackHost reports whether a URL's host is on loopback: "localhost",
// 127.0.0.0/8 or ::1.
func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
