package auth

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ferry-io/ferry/broker"
)

// ErrUnknownToken is what a method of Chain returns (or an error matching
// it, errors.Is) for a token it does not hold (a static token table, say)
// or that is not of its kind (JWT's "malformed token"): Chain then asks the
// next method.
var ErrUnknownToken = errors.New("unknown token")

// Method is one way to authenticate a request; it fits
// broker.Options.Authenticate.
type Method func(r *http.Request) (*broker.Identity, error)

// Chain returns an Authenticate that asks each method in turn: the first
// that accepts the request, or refuses it with an error other than
// broker.ErrNoCredential and ErrUnknownToken, decides. When every method
// passes, a request with a credential gets ErrUnknownToken and one without
// gets broker.ErrNoCredential (both a 401), its text joining what the
// methods said was missing ("send Authorization: Bearer, ...; or present a
// client certificate").
func Chain(methods ...Method) Method {
	return func(r *http.Request) (*broker.Identity, error) {
		unknown := false
		var missing []error
		for _, m := range methods {
			id, err := m(r)
			switch {
			case err == nil:
				return id, nil
			case errors.Is(err, ErrUnknownToken):
				unknown = true
			case errors.Is(err, broker.ErrNoCredential):
				missing = append(missing, err)
			default:
				return nil, err
			}
		}
		if unknown {
			return nil, ErrUnknownToken
		}
		return nil, joinMissing(missing)
	}
}

// missingCredential is a broker.ErrNoCredential with words of its own.
type missingCredential string

func (e missingCredential) Error() string { return string(e) }
func (e missingCredential) Unwrap() error { return broker.ErrNoCredential }

// joinMissing makes one broker.ErrNoCredential of the methods' reasons:
// "ferry: no credential: A; or B".
func joinMissing(errs []error) error {
	const prefix = "ferry: no credential: "
	var parts []string
	for _, err := range errs {
		p := strings.TrimPrefix(err.Error(), prefix)
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	switch len(parts) {
	case 0:
		return broker.ErrNoCredential
	case 1:
		return errs[0]
	}
	return missingCredential(prefix + strings.Join(parts, "; or "))
}
