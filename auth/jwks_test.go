package auth_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
)

// jwkOf is pub as a JWK with a kid, an alg (may be empty) and a use (may
// be empty).
func jwkOf(t *testing.T, pub any, kid string, alg jwkset.ALG, use jwkset.USE) json.RawMessage {
	t.Helper()
	k, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: alg, USE: use}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwksJSON(keys ...json.RawMessage) []byte {
	b, _ := json.Marshal(map[string]any{"keys": append([]json.RawMessage{}, keys...)})
	return b
}

func signKid(t *testing.T, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer serves a key set on 127.0.0.1 that a test may change, and
// counts the fetches.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, set []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(set)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		if code := s.status.Load(); code != 0 {
			http.Error(w, "down", int(code))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(b []byte) { s.status.Store(0); s.body.Store(&b) }

// syncBuffer is a log destination the refresh goroutine may write to
// while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newJWKS(t *testing.T, src string, o auth.JWKSOptions) *auth.JWKS {
	t.Helper()
	k, err := auth.NewJWKS(context.Background(), src, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func mustVerify(t *testing.T, j *auth.JWT, what, token string) {
	t.Helper()
	if _, err := j.Verify(token); err != nil {
		t.Fatalf("%s: refused: %v", what, err)
	}
}

func mustRefuse(t *testing.T, j *auth.JWT, what, token, why string) {
	t.Helper()
	if _, err := j.Verify(token); err == nil || !strings.Contains(err.Error(), why) {
		t.Fatalf("%s: %v, want a refusal saying %q", what, err, why)
	}
}

// A set from a URL: tokens signed with its RSA and Ed25519 keys are valid;
// a kid the set lacks is refused saying so; a rotated set is fetched again
// for the new kid (once: the next unknown kid within the minute is refused
// at once, with no fetch); a failing refresh keeps the last good set.
func TestJWKSURL(t *testing.T) {
	rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := newJWKSServer(t, jwksJSON(jwkOf(t, &rsa1.PublicKey, "rsa-1", jwkset.AlgRS256, ""), jwkOf(t, edPub, "ed-1", "", jwkset.UseSig)))
	k := newJWKS(t, srv.URL+"/jwks.json", auth.JWKSOptions{Logger: slog.New(slog.DiscardHandler)})
	j, err := auth.NewJWT(auth.JWTConfig{JWKS: k})
	if err != nil {
		t.Fatal(err)
	}
	if got := k.KeyIDs(); !slices.Equal(got, []string{"rsa-1", "ed-1"}) {
		t.Fatalf("kids %v", got)
	}
	mustVerify(t, j, "RS256", signKid(t, jwt.SigningMethodRS256, rsa1, "rsa-1", valid("dev-1")))
	mustVerify(t, j, "EdDSA", signKid(t, jwt.SigningMethodEdDSA, edKey, "ed-1", valid("dev-1")))
	mustVerify(t, j, "EdDSA without a kid", signKid(t, jwt.SigningMethodEdDSA, edKey, "", valid("dev-1")))
	mustRefuse(t, j, "RS256 with a kid naming another key", signKid(t, jwt.SigningMethodRS256, rsa2, "rsa-1", valid("dev-1")), "signature invalid")
	mustRefuse(t, j, "PS256 with a key for RS256", signKid(t, jwt.SigningMethodPS256, rsa1, "rsa-1", valid("dev-1")), `the key 'rsa-1' is for RS256, not PS256`)
	mustRefuse(t, j, "ES256 with an Ed25519 key's kid", signKid(t, jwt.SigningMethodES256, ecKey, "ed-1", valid("dev-1")), `the key 'ed-1' is for EdDSA, not ES256`)
	mustRefuse(t, j, "ES256 without a kid", signKid(t, jwt.SigningMethodES256, ecKey, "", valid("dev-1")), "no key in the JWKS for ES256")
	// over real sockets, the reasons in the 401
	_, url := startBroker(t, broker.Options{Authenticate: j.Authenticate})
	if code, body, _ := upgrade(t, url, signKid(t, jwt.SigningMethodEdDSA, edKey, "ed-1", valid("dev-1"))); code != 101 {
		t.Fatalf("EdDSA over a socket: %d %s", code, body)
	}
	if code, _, challenge := upgrade(t, url, signKid(t, jwt.SigningMethodES256, ecKey, "ed-1", valid("dev-1"))); code != 401 ||
		!strings.Contains(challenge, `error_description="the key 'ed-1' is for EdDSA, not ES256"`) {
		t.Fatalf("ES256 over a socket: %d %s", code, challenge)
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches so far, want 1", n)
	}

	// rotation: rsa-2 replaces rsa-1; its first token fetches the set
	srv.set(jwksJSON(jwkOf(t, &rsa2.PublicKey, "rsa-2", jwkset.AlgRS256, ""), jwkOf(t, edPub, "ed-1", "", "")))
	mustVerify(t, j, "RS256 with the new kid", signKid(t, jwt.SigningMethodRS256, rsa2, "rsa-2", valid("dev-1")))
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the new kid, want 2", n)
	}
	mustRefuse(t, j, "the removed key", signKid(t, jwt.SigningMethodRS256, rsa1, "rsa-1", valid("dev-1")), `unknown key id (kid) 'rsa-1'`)
	mustRefuse(t, j, "an unknown kid", signKid(t, jwt.SigningMethodRS256, rsa1, "nope", valid("dev-1")), `unknown key id (kid) 'nope'`)
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches: unknown kids within the minute must not fetch again", n)
	}

	// refreshes that fail keep the set in force
	rsa2Token := signKid(t, jwt.SigningMethodRS256, rsa2, "rsa-2", valid("dev-1"))
	for _, tc := range []struct {
		name  string
		serve func()
		why   string
	}{
		{"HTTP 500", func() { srv.status.Store(500) }, "HTTP status 500"},
		{"not JSON", func() { srv.set([]byte("<html>")) }, "not a JSON Web Key Set"},
		{"no keys list", func() { srv.set([]byte(`{}`)) }, `no "keys" list`},
		{"an empty set", func() { srv.set(jwksJSON()) }, "holds no RSA, ECDSA or Ed25519 signing key"},
		{"only a symmetric key", func() {
			srv.set([]byte(`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`))
		}, "holds no RSA"},
		{"an invalid key", func() { srv.set([]byte(`{"keys":[{"kty":"RSA","kid":"bad","n":"!!","e":"AQAB"}]}`)) }, `key 1 (kid "bad")`},
		{"over 1 MiB", func() { srv.set(bytes.Repeat([]byte(" "), 1<<20+1)) }, "over 1048576 bytes"},
	} {
		tc.serve()
		if err := k.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Fatalf("%s: Reload: %v, want an error saying %q", tc.name, err, tc.why)
		}
		mustVerify(t, j, "after a failed refresh ("+tc.name+")", rsa2Token)
	}
	srv.set(jwksJSON(jwkOf(t, edPub, "ed-1", "", "")))
	if err := k.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, j, "a key the reloaded set dropped", rsa2Token, `unknown key id (kid) 'rsa-2'`)
}

// The set from a URL is fetched again every Refresh: a failure is logged
// without the URL's query, and the next good set is taken.
func TestJWKSRefreshEvery(t *testing.T) {
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	ed2Pub, ed2Key, _ := ed25519.GenerateKey(rand.Reader)
	srv := newJWKSServer(t, jwksJSON(jwkOf(t, edPub, "ed-1", "", "")))
	var logs syncBuffer
	k := newJWKS(t, srv.URL+"/jwks?api_key=s3cr3t-query", auth.JWKSOptions{
		Refresh: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	j, err := auth.NewJWT(auth.JWTConfig{JWKS: k})
	if err != nil {
		t.Fatal(err)
	}
	mustVerify(t, j, "EdDSA", signKid(t, jwt.SigningMethodEdDSA, edKey, "ed-1", valid("dev-1")))
	srv.status.Store(503)
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "a logged refresh failure", func() bool {
		return strings.Contains(logs.String(), "JWKS refresh failed")
	})
	mustVerify(t, j, "EdDSA while the server fails", signKid(t, jwt.SigningMethodEdDSA, edKey, "ed-1", valid("dev-1")))
	srv.set(jwksJSON(jwkOf(t, ed2Pub, "ed-2", "", "")))
	testutil.Eventually(t, 10*time.Second, 5*time.Millisecond, "the refreshed set", func() bool {
		return slices.Equal(k.KeyIDs(), []string{"ed-2"})
	})
	mustVerify(t, j, "EdDSA with the refreshed key", signKid(t, jwt.SigningMethodEdDSA, ed2Key, "ed-2", valid("dev-1")))
	k.Close()
	out := logs.String()
	if strings.Contains(out, "s3cr3t") || !strings.Contains(out, "HTTP status 503") || !strings.Contains(out, srv.URL+"/jwks") {
		t.Fatalf("logs:\n%s", out)
	}
}

// Algorithm confusion: an HS256 token "signed" with the RSA public key
// (its PEM or its JWK as the secret), or with a symmetric key that sits in
// the set, is refused; so is alg none; keys meant for encryption are not
// used. With secrets configured too, HS256 tokens are checked against the
// secrets only, and the set's keys and the PEM keys each still verify.
func TestJWKSAlgorithmConfusion(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	encKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pemKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	octSecret := []byte("a-symmetric-key-in-the-set-32byt")
	rsaJWK := jwkOf(t, &rsaKey.PublicKey, "rsa-x", "", "")
	oct := json.RawMessage(`{"kty":"oct","kid":"hmac","k":"` + base64.RawURLEncoding.EncodeToString(octSecret) + `"}`)
	srv := newJWKSServer(t, jwksJSON(rsaJWK, oct, jwkOf(t, &encKey.PublicKey, "enc-1", "", jwkset.UseEnc)))
	k := newJWKS(t, srv.URL, auth.JWKSOptions{})
	if got := k.KeyIDs(); !slices.Equal(got, []string{"rsa-x", "enc-1"}) {
		t.Fatalf("kids %v: the symmetric key must be left out", got)
	}
	rsaPEM := pemOf(t, &rsaKey.PublicKey)
	confused := map[string]string{
		"HS256 with the RSA key's PEM":    signKid(t, jwt.SigningMethodHS256, rsaPEM, "rsa-x", valid("dev-1")),
		"HS256 with the RSA key's JWK":    signKid(t, jwt.SigningMethodHS256, []byte(rsaJWK), "rsa-x", valid("dev-1")),
		"HS256 with the set's oct key":    signKid(t, jwt.SigningMethodHS256, octSecret, "hmac", valid("dev-1")),
		"HS512 with the oct key, no kid":  signKid(t, jwt.SigningMethodHS512, octSecret, "", valid("dev-1")),
		"alg none":                        signKid(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-x", valid("dev-1")),
		"RS256 with the encryption key":   signKid(t, jwt.SigningMethodRS256, encKey, "enc-1", valid("dev-1")),
		"ES256 with the RSA key's kid":    signKid(t, jwt.SigningMethodES256, ecKey, "rsa-x", valid("dev-1")),
		"RS256 with a kid that is no key": signKid(t, jwt.SigningMethodRS256, rsaKey, "hmac", valid("dev-1")),
	}

	jwksOnly, err := auth.NewJWT(auth.JWTConfig{JWKS: k})
	if err != nil {
		t.Fatal(err)
	}
	for what, why := range map[string]string{
		"HS256 with the RSA key's PEM":    "signing algorithm not accepted",
		"HS256 with the RSA key's JWK":    "signing algorithm not accepted",
		"HS256 with the set's oct key":    "signing algorithm not accepted",
		"HS512 with the oct key, no kid":  "signing algorithm not accepted",
		"alg none":                        "signing algorithm not accepted",
		"RS256 with the encryption key":   `the key 'enc-1' is not for signatures (use 'enc')`,
		"ES256 with the RSA key's kid":    `the key 'rsa-x' is an RSA key, not one for ES256`,
		"RS256 with a kid that is no key": `unknown key id (kid) 'hmac'`,
	} {
		mustRefuse(t, jwksOnly, what, confused[what], why)
	}
	mustVerify(t, jwksOnly, "RS256", signKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-x", valid("dev-1")))
	mustVerify(t, jwksOnly, "PS256 with an RSA key without alg", signKid(t, jwt.SigningMethodPS256, rsaKey, "rsa-x", valid("dev-1")))

	both, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}, PublicKeys: []crypto.PublicKey{&pemKey.PublicKey}, JWKS: k})
	if err != nil {
		t.Fatal(err)
	}
	for what, why := range map[string]string{
		"HS256 with the RSA key's PEM":   "signature invalid",
		"HS256 with the RSA key's JWK":   "signature invalid",
		"HS256 with the set's oct key":   "signature invalid",
		"HS512 with the oct key, no kid": "signature invalid",
		"alg none":                       "signing algorithm not accepted",
		"RS256 with the encryption key":  `the key 'enc-1' is not for signatures`,
		// the PEM key is tried, and fails
		"ES256 with the RSA key's kid": "signature invalid",
	} {
		mustRefuse(t, both, what+" (with secrets and PEM keys)", confused[what], why)
	}
	mustVerify(t, both, "HS256 with the secret", signKid(t, jwt.SigningMethodHS256, secret1, "rsa-x", valid("dev-1")))
	mustVerify(t, both, "RS256 from the set", signKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-x", valid("dev-1")))
	mustVerify(t, both, "ES256 with the PEM key, a kid the set lacks", signKid(t, jwt.SigningMethodES256, pemKey, "elsewhere", valid("dev-1")))
	mustVerify(t, both, "ES256 with the PEM key, no kid", signKid(t, jwt.SigningMethodES256, pemKey, "", valid("dev-1")))
}

// A set from a file is read again when it changes: at once for a kid it
// lacks, within a few seconds for a key replaced under the same kid, and
// on Reload; a bad file keeps the last good set.
func TestJWKSFile(t *testing.T) {
	ed1Pub, ed1Key, _ := ed25519.GenerateKey(rand.Reader)
	ed2Pub, ed2Key, _ := ed25519.GenerateKey(rand.Reader)
	ed3Pub, ed3Key, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	f := filepath.Join(dir, "jwks.json")
	generation := time.Now()
	write := func(b []byte) {
		t.Helper()
		tmp := filepath.Join(dir, "new")
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		// each version a second apart, as written by hand: on a file
		// system with coarse mtimes two quick writes could look alike
		generation = generation.Add(time.Second)
		if err := os.Chtimes(tmp, generation, generation); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil {
			t.Fatal(err)
		}
	}
	write(jwksJSON(jwkOf(t, ed1Pub, "ed-1", "", "")))
	var logs syncBuffer
	k := newJWKS(t, f, auth.JWKSOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	j, err := auth.NewJWT(auth.JWTConfig{JWKS: k})
	if err != nil {
		t.Fatal(err)
	}
	ed1 := signKid(t, jwt.SigningMethodEdDSA, ed1Key, "ed-1", valid("dev-1"))
	mustVerify(t, j, "ed-1", ed1)

	write(jwksJSON(jwkOf(t, ed2Pub, "ed-2", "", "")))
	mustVerify(t, j, "ed-2, a kid the file holds since it changed", signKid(t, jwt.SigningMethodEdDSA, ed2Key, "ed-2", valid("dev-1")))
	mustRefuse(t, j, "ed-1, dropped from the file", ed1, `unknown key id (kid) 'ed-1'`)

	// the key under kid ed-2 replaced: no unknown kid tells, the periodic
	// look at the file does
	ed2 := signKid(t, jwt.SigningMethodEdDSA, ed2Key, "ed-2", valid("dev-1"))
	write(jwksJSON(jwkOf(t, ed3Pub, "ed-2", "", "")))
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, "the old ed-2 key refused", func() bool {
		_, err := j.Verify(ed2)
		return err != nil
	})
	mustVerify(t, j, "the new ed-2 key", signKid(t, jwt.SigningMethodEdDSA, ed3Key, "ed-2", valid("dev-1")))

	// a bad file: Reload says so, the periodic look logs it, the set stays
	ed3 := signKid(t, jwt.SigningMethodEdDSA, ed3Key, "ed-2", valid("dev-1"))
	write([]byte(`{"keys": [`))
	mustRefuse(t, j, "an unknown kid, which has the bad file read", signKid(t, jwt.SigningMethodEdDSA, ed1Key, "ed-9", valid("dev-1")), `unknown key id (kid) 'ed-9'`)
	if !strings.Contains(logs.String(), "JWKS refresh failed") || !strings.Contains(logs.String(), "not a JSON Web Key Set") {
		t.Fatalf("the bad file was not logged:\n%s", logs.String())
	}
	mustVerify(t, j, "after a bad file", ed3)
	if err := k.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "not a JSON Web Key Set") || !strings.Contains(err.Error(), f) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if err := os.WriteFile(f, jwksJSON(jwkOf(t, ed1Pub, "ed-1", "", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := k.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, j, "ed-1 after Reload", ed1)
}

// A set that cannot be had at the start is an error naming why.
func TestNewJWKSErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/jwks?token=s3cr3t"
	ln.Close()
	noKeys := newJWKSServer(t, jwksJSON())
	for _, tc := range []struct {
		src, want string
	}{
		{"", "no JWKS file or URL"},
		{closed, "fetch failed"},
		{"http://idp.example.com/jwks", "use https"},
		{"https://", "not a valid URL"},
		{noKeys.URL, "holds no RSA, ECDSA or Ed25519 signing key"},
		{filepath.Join(t.TempDir(), "none.json"), "none.json"},
	} {
		_, err := auth.NewJWKS(context.Background(), tc.src, auth.JWKSOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("NewJWKS(%q): %v, want an error saying %q", tc.src, err, tc.want)
		}
	}
}
