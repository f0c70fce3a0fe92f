// Package auth holds ferry's built-in authentication: JSON Web Tokens
// verified with shared secrets, public keys or a JSON Web Key Set, static
// tokens from a file, and verified TLS client certificates
// (ClientCertificate). Its Authenticate methods fit
// broker.Options.Authenticate; Chain combines them.
package auth

import (
	"bytes"
	"context"
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
	"slices"
	"strings"
	"time"

	"github.com/ferry-io/ferry/broker"
	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = 5 * time.Second

// JWTConfig configures a JWT verifier. At least one secret, key or key set
// is needed; the algorithms accepted follow from them (HS256/384/512 for
// secrets; RS256/384/512 and PS256/384/512 for RSA keys, ES256/384/512 for
// ECDSA keys, EdDSA for Ed25519 keys; all the asymmetric ones for a JWKS),
// so that a token signed with another kind of key (an HS256 token made with
// an RSA public key as its secret, say) is refused.
type JWTConfig struct {
	// Secrets are HMAC secrets; a token verified by any of them is valid
	// (two at once let a secret be rotated).
	Secrets [][]byte
	// PublicKeys verify tokens signed with asymmetric keys.
	PublicKeys []crypto.PublicKey
	// JWKS, when set, is a key set whose RSA, ECDSA and Ed25519 keys
	// verify tokens too, beside PublicKeys (a token verified by either is
	// valid): a token's kid picks the key. Never used for HS256/384/512.
	// The JWT does not close it.
	JWKS *JWKS
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
	jwks    *JWKS                             // nil without one
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
	j.jwks = c.JWKS
	if len(j.keys["RSA"].Keys) > 0 || j.jwks != nil {
		methods = append(methods, "RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
	}
	if len(j.keys["EC"].Keys) > 0 || j.jwks != nil {
		methods = append(methods, "ES256", "ES384", "ES512")
	}
	if len(j.keys["OKP"].Keys) > 0 || j.jwks != nil {
		methods = append(methods, "EdDSA")
	}
	if len(methods) == 0 {
		return nil, errors.New("auth: no HMAC secret, public key or JWKS to verify tokens with")
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

// key gives the parser the keys of the token's algorithm's kind: the
// secrets for HMAC; the public keys of that kind and, with a JWKS, its key
// the token's kid names (or all its keys of that kind, without a kid).
func (j *JWT) key(ctx context.Context, t *jwt.Token) (any, error) {
	kind := ""
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		return j.secrets, nil
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		kind = "RSA"
	case *jwt.SigningMethodECDSA:
		kind = "EC"
	case *jwt.SigningMethodEd25519:
		kind = "OKP"
	default:
		return nil, fmt.Errorf("algorithm %v not accepted", t.Header["alg"])
	}
	if j.jwks == nil {
		return j.keys[kind], nil
	}
	static := j.keys[kind].Keys
	found, err := j.jwks.keys(ctx, t, kind)
	if err != nil && len(static) == 0 {
		return nil, err
	}
	return jwt.VerificationKeySet{Keys: append(slices.Clip(static), found...)}, nil
}

// Verify checks a token and returns the identity it carries: sub as the
// Subject, exp plus the leeway as Expires, every claim in Claims, and the
// permissions and limits of the "ferry" claim, if it has them (without
// permissions, the broker's ACL decides). The error says what was wrong,
// in words fit for a client (it never repeats the token). With a JWKS
// fetched from a URL, a token whose kid is unknown may make it fetch the
// set again, waiting for it: VerifyContext bounds that wait.
func (j *JWT) Verify(token string) (*broker.Identity, error) {
	return j.VerifyContext(context.Background(), token)
}

// VerifyContext is Verify with a context for the fetch a JWKS may make.
func (j *JWT) VerifyContext(ctx context.Context, token string) (*broker.Identity, error) {
	claims := jwt.MapClaims{}
	t, err := j.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return j.key(ctx, t) })
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
		p, l, err := ferryClaim(raw)
		if err != nil {
			return nil, err
		}
		id.Permissions, id.Limits = p, l
	}
	return id, nil
}

// ferryClaim reads the permissions and limits in a token's "ferry" claim:
// {"pub": [...], "sub": {"allow": [...], "deny": [...]}, "limits": {...}}.
// A claim that holds nothing but "limits" carries no permissions (the ACL
// decides); any other claim does, none if it names none.
func ferryClaim(raw any) (*broker.Permissions, *broker.Limits, error) {
	obj, isObject := raw.(map[string]any)
	if !isObject {
		return nil, nil, errors.New("invalid ferry claim: not an object")
	}
	var lim *broker.Limits
	if l, ok := obj["limits"]; ok {
		b, err := json.Marshal(l)
		if err == nil {
			lim, err = parseLimits(b)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("invalid ferry claim: limits %v", err)
		}
		if len(obj) == 1 {
			return nil, lim, nil
		}
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, errors.New("invalid ferry claim")
	}
	var c struct {
		Pub *broker.PermissionLists `json:"pub"`
		Sub *broker.PermissionLists `json:"sub"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, nil, fmt.Errorf("invalid ferry claim: %v", err)
	}
	p := &broker.Permissions{}
	if c.Pub != nil {
		p.Pub = *c.Pub
	}
	if c.Sub != nil {
		p.Sub = *c.Sub
	}
	return p, lim, nil
}

// parseLimits reads a "limits" object, {"pub_rate": 10, "pub_burst": 20,
// "max_subs": 50} (each key optional), as a token's claim or a static
// token's entry holds it. Unknown keys, values that are not numbers (whole
// ones for pub_burst and max_subs) and negative ones are refused; the
// error says which key.
func parseLimits(b []byte) (*broker.Limits, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, errors.New(`must be an object: {"pub_rate": 10, "pub_burst": 20, "max_subs": 50}`)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l broker.Limits
	if err := dec.Decode(&l); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "pub_rate":
			return nil, fmt.Errorf("pub_rate: want a number, not %s", te.Value)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: want a whole number, not %s", te.Field, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return nil, fmt.Errorf("unknown key %s: want pub_rate, pub_burst or max_subs", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return nil, errors.New("not valid JSON")
	}
	switch {
	case l.PubRate < 0:
		return nil, fmt.Errorf("pub_rate: %v is negative", l.PubRate)
	case l.PubBurst < 0:
		return nil, fmt.Errorf("pub_burst: %d is negative", l.PubBurst)
	case l.MaxSubscriptions < 0:
		return nil, fmt.Errorf("max_subs: %d is negative", l.MaxSubscriptions)
	}
	return &l, nil
}

// Authenticate implements broker.Options.Authenticate: the request's
// credential (broker.Credential), verified.
func (j *JWT) Authenticate(r *http.Request) (*broker.Identity, error) {
	tok, err := broker.Credential(r)
	if err != nil {
		return nil, err
	}
	return j.VerifyContext(r.Context(), tok)
}

// errMalformed is the reason for a token that is not a JWT at all. It
// matches ErrUnknownToken, so that Chain asks its next method (a table of
// static tokens, say), and a token none of them knows gets "unknown token".
var errMalformed error = notMine("malformed token")

// notMine is a refusal of a token that is not of the method's kind.
type notMine string

func (e notMine) Error() string        { return string(e) }
func (e notMine) Is(target error) bool { return target == ErrUnknownToken }

// describe turns the parser's error into a reason a client can act on.
func describe(err error, claims jwt.MapClaims) error {
	var ke keyError
	switch {
	case errors.As(err, &ke):
		// a JWKS's reason: an unknown kid, a key of another algorithm
		return ke
	case strings.Contains(err.Error(), "signing method"):
		// the parser's words for an algorithm outside the accepted ones
		// ("none" among them)
		return errors.New("signing algorithm not accepted")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
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
