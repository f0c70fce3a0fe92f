package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/perm"
)

// minPlainToken is the shortest plain token accepted in a token file.
const minPlainToken = 16

// Tokens is a table of static tokens, for scripts and devices that cannot
// mint JWTs: each stands for an identity, with its own permissions and
// limits if it has them. Only the tokens' SHA-256 hashes are kept. A
// presented token is looked up by its hash, so the look-up takes the same
// work whatever the token, and tells nothing about the tokens held. Its
// methods are safe for concurrent use.
type Tokens struct {
	byHash map[[sha256.Size]byte]*staticToken
}

type staticToken struct {
	subject string
	perms   *broker.Permissions // nil: the ACL decides
	limits  *broker.Limits
}

// LoadTokens reads a token file (see ParseTokens).
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return ParseTokens(b, path)
}

// ParseTokens reads a token table: a JSON list of entries, each with an
// "identity" and either "sha256", the hex SHA-256 of the token
// (printf %s "$TOKEN" | sha256sum), or "token", the token itself (at least
// 16 bytes; hashed here, the text not kept); and optionally "pub" and
// "sub", the permissions (as in an ACL entry; without either, the ACL
// grants the identity's), and "limits" ({"pub_rate": 10, "pub_burst": 20,
// "max_subs": 50}):
//
//	[{"identity": "dev-17", "sha256": "9f86d0...", "pub": ["telemetry/{sub}/#"], "limits": {"pub_rate": 5}},
//	 {"identity": "script", "token": "a-long-random-token"}]
//
// Unknown keys, a token held twice and permissions that are not valid are
// refused; from names the text's origin for errors, which name the entry
// and the key.
func ParseTokens(b []byte, from string) (*Tokens, error) {
	var entries []json.RawMessage
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf(`auth: %s: want a JSON list of tokens, [{"identity": ..., "sha256": ...}]: %v`, from, err)
	}
	t := &Tokens{byHash: make(map[[sha256.Size]byte]*staticToken, len(entries))}
	first := make(map[[sha256.Size]byte]int, len(entries))
	for i, raw := range entries {
		h, e, err := parseToken(raw)
		if err != nil {
			return nil, fmt.Errorf("auth: %s: entry %d: %w", from, i+1, err)
		}
		if j, dup := first[h]; dup {
			return nil, fmt.Errorf("auth: %s: entry %d: the same token as entry %d", from, i+1, j)
		}
		first[h] = i + 1
		t.byHash[h] = e
	}
	return t, nil
}

// parseToken reads one entry of a token table.
func parseToken(raw json.RawMessage) ([sha256.Size]byte, *staticToken, error) {
	var h [sha256.Size]byte
	var e struct {
		Identity *string `json:"identity"`
		Token    *string `json:"token"`
		SHA256   *string `json:"sha256"`
		// kept as written (null included) to be read with errors of
		// their own
		Pub    json.RawMessage `json:"pub"`
		Sub    json.RawMessage `json:"sub"`
		Limits json.RawMessage `json:"limits"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return h, nil, fmt.Errorf("key %q: want a string, not %s", te.Field, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return h, nil, fmt.Errorf("unknown key %s: want identity, token or sha256, pub, sub, limits", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return h, nil, fmt.Errorf(`want an object, {"identity": ..., "sha256": ...}: %v`, err)
	}
	if e.Identity == nil || *e.Identity == "" {
		return h, nil, errors.New(`key "identity": missing or empty`)
	}
	s := &staticToken{subject: *e.Identity}
	switch {
	case e.Token != nil && e.SHA256 != nil:
		return h, nil, errors.New(`both "token" and "sha256": give one`)
	case e.Token != nil:
		tok := *e.Token
		if strings.TrimSpace(tok) != tok {
			return h, nil, errors.New(`key "token": starts or ends with white space, which a request cannot carry`)
		}
		if len(tok) < minPlainToken {
			return h, nil, fmt.Errorf(`key "token": %d bytes: at least %d are needed (head -c 24 /dev/urandom | base64)`, len(tok), minPlainToken)
		}
		h = sha256.Sum256([]byte(tok))
	case e.SHA256 != nil:
		d, err := hex.DecodeString(*e.SHA256)
		if err != nil {
			return h, nil, errors.New(`key "sha256": not hex: want the 64 hex digits of the token's SHA-256 (printf %s "$TOKEN" | sha256sum)`)
		}
		if len(d) != sha256.Size {
			return h, nil, fmt.Errorf(`key "sha256": %d hex digits: want the 64 of a SHA-256`, len(*e.SHA256))
		}
		copy(h[:], d)
	default:
		return h, nil, errors.New(`no "token" and no "sha256": give one`)
	}
	if e.Pub != nil || e.Sub != nil {
		p := broker.Permissions{}
		for _, k := range []struct {
			name  string
			value json.RawMessage
			into  *broker.PermissionLists
		}{{"pub", e.Pub, &p.Pub}, {"sub", e.Sub, &p.Sub}} {
			if k.value == nil {
				continue
			}
			if err := json.Unmarshal(k.value, k.into); err != nil {
				return h, nil, fmt.Errorf("key %q: %v", k.name, err)
			}
			for _, r := range slices.Concat(k.into.Allow, k.into.Deny) {
				if strings.Contains(r, "{claim:") {
					return h, nil, fmt.Errorf("key %q: %q: a static token has no claims to fill {claim:...}", k.name, r)
				}
			}
		}
		if _, err := perm.Compile(p, perm.Identity{Subject: "x"}); err != nil {
			return h, nil, err
		}
		s.perms = &p
	}
	if e.Limits != nil {
		l, err := parseLimits(e.Limits)
		if err != nil {
			return h, nil, fmt.Errorf(`key "limits": %v`, err)
		}
		s.limits = l
	}
	return h, s, nil
}

// Len returns how many tokens the table holds.
func (t *Tokens) Len() int { return len(t.byHash) }

// Verify returns the identity of a token in the table, a copy of its own
// for the caller to keep: the entry's identity as Subject, its permissions
// (nil without any: the ACL decides) and its limits; no expiry. A token not
// in the table gets ErrUnknownToken.
func (t *Tokens) Verify(token string) (*broker.Identity, error) {
	e, ok := t.byHash[sha256.Sum256([]byte(token))]
	if !ok {
		return nil, ErrUnknownToken
	}
	id := &broker.Identity{Subject: e.subject}
	if e.perms != nil {
		id.Permissions = &broker.Permissions{
			Pub: broker.PermissionLists{Allow: slices.Clone(e.perms.Pub.Allow), Deny: slices.Clone(e.perms.Pub.Deny)},
			Sub: broker.PermissionLists{Allow: slices.Clone(e.perms.Sub.Allow), Deny: slices.Clone(e.perms.Sub.Deny)},
		}
	}
	if e.limits != nil {
		l := *e.limits
		id.Limits = &l
	}
	return id, nil
}

// Authenticate implements broker.Options.Authenticate: the request's
// credential (broker.Credential), looked up. A token not in the table gets
// ErrUnknownToken, so that Chain asks the next method (a JWT's, say); a
// request without one, broker.ErrNoCredential.
func (t *Tokens) Authenticate(r *http.Request) (*broker.Identity, error) {
	tok, err := broker.Credential(r)
	if err != nil {
		return nil, err
	}
	return t.Verify(tok)
}
