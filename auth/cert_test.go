package auth_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/golang-jwt/jwt/v5"
)

// verified makes a request as net/http hands it over after a handshake
// that verified c.
func verified(c *x509.Certificate) *http.Request {
	r, _ := http.NewRequest("GET", "https://broker/ws", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	return r
}

func TestClientCertificateIdentity(t *testing.T) {
	ca := testutil.NewCA(t, "devices")
	for _, tc := range []struct {
		name  string
		leaf  testutil.LeafOptions
		field auth.CertField
		want  string // the subject, or the error's words
		fails bool
	}{
		{"cn", testutil.LeafOptions{CN: "dev-17", DNS: []string{"dev-17.example"}}, auth.CertCommonName, "dev-17", false},
		{"san: DNS first", testutil.LeafOptions{CN: "x", DNS: []string{"dev-17.example", "b.example"}, Emails: []string{"a@example.com"}, URIs: []string{"spiffe://example/dev"}}, auth.CertSAN, "dev-17.example", false},
		{"san: email without DNS", testutil.LeafOptions{CN: "x", Emails: []string{"dev@example.com"}, URIs: []string{"spiffe://example/dev"}}, auth.CertSAN, "dev@example.com", false},
		{"san: URI without DNS or email", testutil.LeafOptions{URIs: []string{"spiffe://example/dev-17"}}, auth.CertSAN, "spiffe://example/dev-17", false},
		{"no CN", testutil.LeafOptions{DNS: []string{"a.example"}}, auth.CertCommonName, "no subject common name (CN)", true},
		{"no SAN", testutil.LeafOptions{CN: "dev-17", IPs: []net.IP{net.IPv4(10, 0, 0, 1)}}, auth.CertSAN, "no DNS, email or URI subject alternative name", true},
	} {
		l := ca.Issue(t, tc.leaf)
		id, err := auth.ClientCertificate(tc.field)(verified(l.Cert))
		switch {
		case tc.fails && (err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, broker.ErrNoCredential)):
			t.Errorf("%s: %v %v, want an error saying %q", tc.name, id, err, tc.want)
		case !tc.fails && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.fails && (id.Subject != tc.want || !id.Expires.Equal(l.Cert.NotAfter) || id.Permissions != nil):
			t.Errorf("%s: %+v, want subject %q expiring at %v without permissions", tc.name, id, tc.want, l.Cert.NotAfter)
		}
	}

	// no TLS, or TLS without a certificate: a missing credential
	plain, _ := http.NewRequest("GET", "http://broker/ws", nil)
	noCert := verified(ca.Client(t, "x").Cert)
	noCert.TLS.PeerCertificates, noCert.TLS.VerifiedChains = nil, nil
	for _, r := range []*http.Request{plain, noCert} {
		if _, err := auth.ClientCertificate(auth.CertCommonName)(r); !errors.Is(err, broker.ErrNoCredential) || !errors.Is(err, auth.ErrNoClientCertificate) {
			t.Errorf("no certificate: %v", err)
		}
	}
	// presented but not verified (a server that only requests one): refused,
	// not taken at its word
	unverified := verified(ca.Client(t, "dev-17").Cert)
	unverified.TLS.VerifiedChains = nil
	if id, err := auth.ClientCertificate(auth.CertCommonName)(unverified); err == nil || errors.Is(err, broker.ErrNoCredential) || !strings.Contains(err.Error(), "not verified") {
		t.Errorf("unverified certificate: %v %v", id, err)
	}

	for s, want := range map[string]auth.CertField{"cn": auth.CertCommonName, "san": auth.CertSAN} {
		if f, err := auth.ParseCertField(s); err != nil || f != want || f.String() != s {
			t.Errorf("ParseCertField(%q) = %v, %v", s, f, err)
		}
	}
	if _, err := auth.ParseCertField("CN"); err == nil {
		t.Error("ParseCertField(CN) accepted")
	}
}

// Chain of a token method and the certificate: a token decides when one
// is sent, the certificate otherwise, and a request with neither gets a
// missing-credential error naming both.
func TestChainTokenAndCertificate(t *testing.T) {
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	m := auth.Chain(j.Authenticate, auth.ClientCertificate(auth.CertCommonName))
	cert := testutil.NewCA(t, "devices").Client(t, "dev-17").Cert

	if id, err := m(verified(cert)); err != nil || id.Subject != "dev-17" {
		t.Fatalf("certificate: %v %v", id, err)
	}
	r := verified(cert)
	r.Header.Set("Authorization", "Bearer "+sign(t, jwt.SigningMethodHS256, secret1, valid("user-1")))
	if id, err := m(r); err != nil || id.Subject != "user-1" {
		t.Fatalf("token and certificate: %v %v", id, err)
	}
	r.Header.Set("Authorization", "Bearer nonsense")
	if id, err := m(r); err == nil || errors.Is(err, broker.ErrNoCredential) {
		t.Fatalf("a bad token with a good certificate: %v %v", id, err)
	}
	plain, _ := http.NewRequest("GET", "http://broker/ws", nil)
	_, err = m(plain)
	want := "ferry: no credential: send Authorization: Bearer, a ferry.bearer.* subprotocol or ?token=; or present a client certificate"
	if !errors.Is(err, broker.ErrNoCredential) || err.Error() != want {
		t.Fatalf("neither: %v, want %q", err, want)
	}
	if _, err := auth.Chain(j.Authenticate, j.Authenticate)(plain); err != broker.ErrNoCredential {
		t.Fatalf("two token methods, no token: %v", err)
	}
}

// Over a real TLS handshake: the certificate net/http verified is the
// identity; with a server that verifies nothing, no identity is taken
// from a certificate.
func TestClientCertificateOverTLS(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	serverCert := ca.Server(t, "broker")
	devices := testutil.NewCA(t, "devices")
	whoami := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := auth.ClientCertificate(auth.CertCommonName)(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, id.Subject)
	})
	serve := func(ca *x509.CertPool, mode tls.ClientAuthType) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCert.TLS}, ClientCAs: ca, ClientAuth: mode, MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: whoami, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return "https://" + ln.Addr().String()
	}
	get := func(url string, certs ...tls.Certificate) (int, string, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, Certificates: certs}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), nil
	}
	verifying := serve(devices.Pool, tls.VerifyClientCertIfGiven)
	if code, body, err := get(verifying, devices.Client(t, "dev-17").TLS); err != nil || code != 200 || body != "dev-17" {
		t.Fatalf("verified certificate: %d %q %v", code, body, err)
	}
	if code, body, err := get(verifying); err != nil || code != 401 || body != auth.ErrNoClientCertificate.Error() {
		t.Fatalf("no certificate: %d %q %v", code, body, err)
	}
	// (a Go client sends only a certificate of a CA the server names: this
	// one goes as a device with another CA's certificate would)
	other := testutil.NewCA(t, "another CA").Client(t, "dev-17").TLS
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other, nil }}}}
	if resp, err := c.Get(verifying); err == nil {
		resp.Body.Close()
		t.Fatalf("a certificate of another CA was accepted: %s", resp.Status)
	} else if !strings.Contains(err.Error(), "remote error: tls") {
		t.Fatalf("a certificate of another CA: %v, want a TLS alert", err)
	}
	requesting := serve(nil, tls.RequestClientCert)
	if code, body, err := get(requesting, testutil.NewCA(t, "self-made").Client(t, "admin").TLS); err != nil || code != 401 || !strings.Contains(body, "not verified") {
		t.Fatalf("unverified certificate: %d %q %v", code, body, err)
	}
}
