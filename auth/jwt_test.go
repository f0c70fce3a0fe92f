package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
)

var (
	secret1 = []byte("first-secret-of-32-bytes-0123456")
	secret2 = []byte("second-secret-of-32-bytes-012345")
)

func sign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func valid(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
}

// startBroker serves a broker with o on 127.0.0.1 and returns it with its
// WebSocket URL.
func startBroker(t *testing.T, o broker.Options) (*broker.Broker, string) {
	t.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", b)
	addr, srv := testutil.Serve(t, mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = b.Shutdown(ctx)
	})
	return b, "ws://" + addr + "/ws"
}

// upgrade sends an upgrade request with a bearer token and returns the
// status, the body and WWW-Authenticate.
func upgrade(t *testing.T, url, token string) (int, string, string) {
	t.Helper()
	code, body, h := testutil.Upgrade(t, url, http.Header{"Authorization": {"Bearer " + token}})
	return code, body, h.Get("WWW-Authenticate")
}

func TestJWTOverRealSockets(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPEM := pemOf(t, &rsaKey.PublicKey)

	hmacOnly, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1, secret2}, Audience: "ferry", Issuer: "fleet"})
	if err != nil {
		t.Fatal(err)
	}
	keysOnly, err := auth.NewJWT(auth.JWTConfig{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey, &ecKey.PublicKey, edPub}})
	if err != nil {
		t.Fatal(err)
	}
	_, h := startBroker(t, broker.Options{Authenticate: hmacOnly.Authenticate})
	_, k := startBroker(t, broker.Options{Authenticate: keysOnly.Authenticate})
	withAud := func(c jwt.MapClaims) jwt.MapClaims { c["aud"], c["iss"] = "ferry", "fleet"; return c }
	now := time.Now()
	for _, tc := range []struct {
		name  string
		url   string
		token string
		code  int
		why   string
	}{
		{"HS256 first secret", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(valid("dev-1"))), 101, ""},
		{"HS512 second secret (rotation)", h, sign(t, jwt.SigningMethodHS512, secret2, withAud(valid("dev-1"))), 101, ""},
		{"RS256", k, sign(t, jwt.SigningMethodRS256, rsaKey, valid("dev-1")), 101, ""},
		{"ES256", k, sign(t, jwt.SigningMethodES256, ecKey, valid("dev-1")), 101, ""},
		{"EdDSA", k, sign(t, jwt.SigningMethodEdDSA, edKey, valid("dev-1")), 101, ""},
		{"garbage", h, "garbage", 401, "malformed token"},
		{"alg none", h, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, withAud(valid("dev-1"))), 401, "signing algorithm not accepted"},
		{"HS256 with the RSA public key as secret (algorithm confusion)", k, sign(t, jwt.SigningMethodHS256, rsaPEM, valid("dev-1")), 401, "signing algorithm not accepted"},
		{"wrong key", k, sign(t, jwt.SigningMethodRS256, otherRSA, valid("dev-1")), 401, "signature invalid"},
		{"wrong secret", h, sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-01234"), withAud(valid("dev-1"))), 401, "signature invalid"},
		{"expired", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(jwt.MapClaims{"sub": "d", "exp": now.Add(-time.Minute).Unix()})), 401, "token expired at"},
		{"expired within the leeway", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(jwt.MapClaims{"sub": "d", "exp": now.Add(-2 * time.Second).Unix()})), 101, ""},
		{"not yet valid", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(jwt.MapClaims{"sub": "d", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()})), 401, "not valid before"},
		{"no exp", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(jwt.MapClaims{"sub": "d"})), 401, "no exp"},
		{"no sub", h, sign(t, jwt.SigningMethodHS256, secret1, withAud(jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})), 401, "no sub"},
		{"wrong aud", h, sign(t, jwt.SigningMethodHS256, secret1, jwt.MapClaims{"sub": "d", "exp": now.Add(time.Hour).Unix(), "aud": "other", "iss": "fleet"}), 401, "wrong audience"},
		{"wrong iss", h, sign(t, jwt.SigningMethodHS256, secret1, jwt.MapClaims{"sub": "d", "exp": now.Add(time.Hour).Unix(), "aud": "ferry", "iss": "other"}), 401, "wrong issuer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, challenge := upgrade(t, tc.url, tc.token)
			if code != tc.code || !strings.Contains(body, tc.why) {
				t.Fatalf("status %d %q, want %d with %q", code, body, tc.code, tc.why)
			}
			if code == 401 && (!strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, tc.why)) {
				t.Fatalf("WWW-Authenticate %q", challenge)
			}
			if len(tc.token) > 20 && strings.Contains(body, tc.token[len(tc.token)-20:]) {
				t.Fatal("the reason repeats the token")
			}
		})
	}
}

func TestVerifyIdentity(t *testing.T) {
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	id, err := j.Verify(sign(t, jwt.SigningMethodHS256, secret1, jwt.MapClaims{"sub": "dev-17", "exp": exp.Unix(), "site": "berlin"}))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "dev-17" || !id.Expires.Equal(exp.Add(auth.DefaultLeeway)) || id.Claims["site"] != "berlin" {
		t.Fatalf("identity %+v", id)
	}
}

func TestNewJWTErrors(t *testing.T) {
	if _, err := auth.NewJWT(auth.JWTConfig{}); err == nil {
		t.Fatal("no keys accepted")
	}
	if _, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{[]byte("short")}}); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Fatalf("short secret: %v", err)
	}
}

func TestLoadSecretsAndKeys(t *testing.T) {
	dir := t.TempDir()
	sf := filepath.Join(dir, "secrets")
	if err := os.WriteFile(sf, []byte(string(secret1)+"\n  "+string(secret2)+"  \n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := auth.LoadSecrets(sf)
	if err != nil || len(s) != 2 || string(s[1]) != string(secret2) {
		t.Fatalf("secrets %q %v", s, err)
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, []byte("\n\n"), 0o600)
	if _, err := auth.LoadSecrets(empty); err == nil {
		t.Fatal("an empty secret file accepted")
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kf := filepath.Join(dir, "key.pem")
	_ = os.WriteFile(kf, pemOf(t, &k.PublicKey), 0o600)
	keys, err := auth.LoadPublicKeys(kf)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	_ = os.WriteFile(kf, []byte("not pem"), 0o600)
	if _, err := auth.LoadPublicKeys(kf); err == nil {
		t.Fatal("a file without PEM accepted")
	}
}

func pemOf(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
