package auth

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	"github.com/ferry-io/ferry/broker"
)

// CertField is the part of a verified client certificate that names the
// connection's identity.
type CertField uint8

const (
	// CertCommonName: the subject's common name (CN).
	CertCommonName CertField = iota
	// CertSAN: the first subject alternative name, looked for in this
	// order: a DNS name, else an email address, else a URI (IP addresses
	// are not identities).
	CertSAN
)

// ParseCertField reads a CertField: "cn" or "san".
func ParseCertField(s string) (CertField, error) {
	switch s {
	case "cn":
		return CertCommonName, nil
	case "san":
		return CertSAN, nil
	}
	return 0, fmt.Errorf("auth: %q: want cn or san", s)
}

func (f CertField) String() string {
	switch f {
	case CertCommonName:
		return "cn"
	case CertSAN:
		return "san"
	}
	return fmt.Sprintf("CertField(%d)", uint8(f))
}

// ErrNoClientCertificate is what ClientCertificate returns for a request
// without a verified client certificate; it wraps broker.ErrNoCredential,
// so the request gets the 401 of a missing credential.
var ErrNoClientCertificate error = missingCredential("ferry: no credential: present a client certificate")

// ClientCertificate returns a Method that authenticates a request by its
// TLS client certificate, once verified by the server's tls.Config
// (ClientCAs, with ClientAuth tls.VerifyClientCertIfGiven or stricter):
// only r.TLS.VerifiedChains counts, never a certificate merely presented.
// The Identity's Subject is the certificate's field (its CN, or its first
// SAN), its Expires the certificate's NotAfter, and its Permissions nil, so
// that the broker's ACL grants it permissions by that subject. A request
// without a verified certificate gets ErrNoClientCertificate; one whose
// certificate has no such field gets an error saying so. A request that
// carries a token gets ErrUnknownToken: the token decides, so in a Chain
// a token that no method accepts is refused even with a good certificate.
func ClientCertificate(field CertField) Method {
	return func(r *http.Request) (*broker.Identity, error) {
		if _, err := broker.Credential(r); !errors.Is(err, broker.ErrNoCredential) {
			// a token was sent: it decides, not the certificate (in a
			// Chain, a token no method holds is refused)
			return nil, ErrUnknownToken
		}
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				return nil, errors.New("the client certificate was not verified (the server's TLS configuration needs ClientCAs and tls.VerifyClientCertIfGiven)")
			}
			return nil, ErrNoClientCertificate
		}
		c := r.TLS.VerifiedChains[0][0]
		sub, err := certSubject(c, field)
		if err != nil {
			return nil, err
		}
		return &broker.Identity{Subject: sub, Expires: c.NotAfter}, nil
	}
}

// certSubject reads the identity from c.
func certSubject(c *x509.Certificate, field CertField) (string, error) {
	switch field {
	case CertCommonName:
		if c.Subject.CommonName == "" {
			return "", errors.New("the client certificate has no subject common name (CN)")
		}
		return c.Subject.CommonName, nil
	case CertSAN:
		for _, d := range c.DNSNames {
			if d != "" {
				return d, nil
			}
		}
		for _, e := range c.EmailAddresses {
			if e != "" {
				return e, nil
			}
		}
		for _, u := range c.URIs {
			if s := u.String(); s != "" {
				return s, nil
			}
		}
		return "", errors.New("the client certificate has no DNS, email or URI subject alternative name (SAN)")
	}
	return "", fmt.Errorf("auth: unknown certificate field %v", field)
}
