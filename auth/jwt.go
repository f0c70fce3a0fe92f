// Package auth holds ferry's built-in authentication: JSON Web Tokens
// verified with shared secrets or public keys, and verified TLS client
// certificates (ClientCertificate). Its Authenticate methods fit
// broker.Options.Authenticate.
package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = 5 * time.Second

// JWTConfig configures a JWT verifier. At least one secret or key is
// needed; the algorithms accepted follow from them (HS256/384/512 for
// secrets; RS256/384/512 and PS256/384/512 for RSA keys, ES256/384/512 for
// ECDSA keys, EdDSA for Ed25519 keys), so that a token signed with another
// kind of key (an HS256 token made with an RSA public key as its secret,
// say) is refused.
type JWTConfig struct {
	// Secrets are HMAC secrets; a token verified by any of them is valid
	// (two at once let a secret be rotated).
	Secrets [][]byte
	// PublicKeys verify tokens signed with asymmetric keys.
	PublicKeys []crypto.PublicKey
	// Audience and Issuer, when set, must be the token's aud (one of them)
	// and iss.
	Audience string
	Issuer   string
	// Leeway is the clock skew allowed on exp and nbf. Default
	// DefaultLeeway.
	Leeway time.Duration
}

// JWT verifies JSON Web Tokens. exp is required and sub must be a
// non-empty string: it is the identity. Its methods are safe for
// concurrent use.
type JWT struct {
	parser  *jwt.Parser
	leeway  time.Duration
	secrets jwt.VerificationKeySet
	keys    map[string]jwt.VerificationKeySet // by key kind: "RSA", "EC", "OKP"
}

// NewJWT returns a verifier, or an error naming what is wrong with c.
func NewJWT(c JWTConfig) (*JWT, error) {
	j := &JWT{keys: make(map[string]jwt.VerificationKeySet)}
	var methods []string
	for i, s := range c.Secrets {
		if len(s) < 16 {
			return nil, fmt.Errorf("auth: HMAC secret %d is %d bytes: at least 16 are needed", i+1, len(s))
		}
		j.secrets.Keys = append(j.secrets.Keys, s)
	}
	if len(c.Secrets) > 0 {
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	for i, k := range c.PublicKeys {
		kind := ""
		switch k.(type) {
		case *rsa.PublicKey:
			kind = "RSA"
		case *ecdsa.PublicKey:
			kind = "EC"
		case ed25519.PublicKey:
			kind = "OKP"
		default:
			return nil, fmt.Errorf("auth: public key %d is a %T: want RSA, ECDSA or Ed25519", i+1, k)
		}
		ks := j.keys[kind]
		ks.Keys = append(ks.Keys, k)
		j.keys[kind] = ks
	}
	if len(j.keys["RSA"].Keys) > 0 {
		methods = append(methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	}
	if len(j.keys["EC"].Keys) > 0 {
		methods = append(methods, "ES256", "ES384", "ES512")
	}
	if len(j.keys["OKP"].Keys) > 0 {
		methods = append(methods, "EdDSA")
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: no HMAC secret and no public key to verify tokens with")
	}
	leeway := c.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)}
	if c.Audience != "" {
		opts = append(opts, jwt.WithAudience(c.Audience))
	}
	if c.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.Issuer))
	}
	j.parser, j.leeway = jwt.NewParser(opts...), leeway
	return j, nil
}

// key gives the parser the keys of the token's algorithm's kind.
func (j *JWT) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		return j.secrets, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		return j.keys["RSA"], nil
	case *jwt.SigningMethodECDSA:
		return j.keys["EC"], nil
	case *jwt.SigningMethodEd25519:
		return j.keys["OKP"], nil
	}
	return nil, fmt.Errorf("algorithm %v not accepted", t.Header["alg"])
}

// Verify checks a token and returns the identity it carries: sub as the
// Subject, exp plus the leeway as Expires, every claim in Claims, and the
// permissions of the "ferry" claim, if it has one (without it, the
// broker's ACL decides). The error says what was
// wrong, in words fit for a client (it never repeats the token).
func (j *JWT) Verify(token string) (*broker.Identity, error) {
	claims := jwt.MapClaims{}
	t, err := j.parser.ParseWithClaims(token, claims, j.key)
	if err != nil {
		return nil, describe(err, claims)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return nil, errors.New("the token has no sub (subject) claim")
	}
	exp, _ := t.Claims.GetExpirationTime()
	// the connection lasts as long as the token is accepted: exp, plus
	// the leeway
	id := &broker.Identity{Subject: sub, Claims: claims, Expires: exp.Add(j.leeway)}
	if raw, ok := claims["ferry"]; ok {
		p, err := ferryClaim(raw)
		if err != nil {
			return nil, err
		}
		id.Permissions = p
	}
	return id, nil
}

// ferryClaim reads the permissions in a token's "ferry" claim:
// {"pub": [...], "sub": {"allow": [...], "deny": [...]}}.
func ferryClaim(raw any) (*broker.Permissions, error) {
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, errors.New("invalid ferry claim")
	}
	var c struct {
		Pub *broker.PermissionLists `json:"pub"`
		Sub *broker.PermissionLists `json:"sub"`
	}
	if _, isObject := raw.(map[string]any); !isObject {
		return nil, errors.New("invalid ferry claim: not an object")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("invalid ferry claim: %v", err)
	}
	p := &broker.Permissions{}
	if c.Pub != nil {
		p.Pub = *c.Pub
	}
	if c.Sub != nil {
		p.Sub = *c.Sub
	}
	return p, nil
}

// Authenticate implements broker.Options.Authenticate: the request's
// credential (broker.Credential), verified.
func (j *JWT) Authenticate(r *http.Request) (*broker.Identity, error) {
	tok, err := broker.Credential(r)
	if err != nil {
		return nil, err
	}
	return j.Verify(tok)
}

// describe turns the parser's error into a reason a client can act on.
func describe(err error, claims jwt.MapClaims) error {
	switch {
	case strings.Contains(err.Error(), "signing method"):
		// the parser's words for an algorithm outside the accepted ones
		// ("none" among them)
		return errors.New("signing algorithm not accepted")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("signature invalid")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("token cannot be verified with the configured keys")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("the token has no exp (expiry) claim")
	case errors.Is(err, jwt.ErrTokenExpired):
		if exp, e := claims.GetExpirationTime(); e == nil && exp != nil {
			return fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return errors.New("token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		if nbf, e := claims.GetNotBefore(); e == nil && nbf != nil {
			return fmt.Errorf("token not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
		return errors.New("token not valid yet")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errors.New("wrong audience (aud)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errors.New("wrong issuer (iss)")
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return errors.New("invalid claims")
	}
	return errors.New("invalid token")
}

// LoadSecrets reads HMAC secrets from a file: each non-empty line, trimmed,
// is one secret (two lines while a secret is rotated).
func LoadSecrets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSecrets(string(b), path)
}

// ParseSecrets splits text into secrets as LoadSecrets does; from names
// where the text came from, for errors.
func ParseSecrets(text, from string) ([][]byte, error) {
	var out [][]byte
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, []byte(line))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("auth: %s holds no secret", from)
	}
	return out, nil
}

// LoadPublicKeys reads PEM public keys (PKIX "PUBLIC KEY" blocks, or
// certificates) from a file.
func LoadPublicKeys(path string) ([]crypto.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var keys []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: %s: %w", path, err)
			}
			keys = append(keys, k)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: %s: %w", path, err)
			}
			keys = append(keys, c.PublicKey)
		default:
			return nil, fmt.Errorf("auth: %s: a %q block: want PUBLIC KEY or CERTIFICATE", path, blk.Type)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("auth: %s holds no PEM public key", path)
	}
	return keys, nil
}
