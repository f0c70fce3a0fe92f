package tlsreload_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/ferry-io/ferry/tlsreload"
)

func cn(r *tlsreload.Reloader) string { return r.Certificate().Leaf.Subject.CommonName }

func TestReload(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "A").WriteFiles(t, dir, "server")
	r, err := tlsreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.GetCertificate(nil); got.Leaf.Subject.CommonName != "A" {
		t.Fatalf("serving %q, want A", got.Leaf.Subject.CommonName)
	}

	// every kind of broken replacement keeps A and names the file
	b := ca.Server(t, "B")
	other := ca.Server(t, "other")
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      []string
	}{
		{"garbage certificate", []byte("not PEM"), b.KeyPEM, []string{certFile, "no PEM CERTIFICATE block"}},
		{"truncated certificate", b.CertPEM[:len(b.CertPEM)/2], b.KeyPEM, []string{certFile}},
		{"empty key", b.CertPEM, nil, []string{keyFile, "no PEM PRIVATE KEY block"}},
		{"key of another certificate", b.CertPEM, other.KeyPEM, []string{keyFile, certFile, "does not match"}},
	} {
		testutil.WriteFileAtomic(t, certFile, tc.cert)
		testutil.WriteFileAtomic(t, keyFile, tc.key)
		err := r.Reload()
		if err == nil {
			t.Fatalf("%s: reloaded", tc.name)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %q", tc.name, err, w)
			}
		}
		if cn(r) != "A" {
			t.Fatalf("%s: serving %q, want A still", tc.name, cn(r))
		}
	}
	if err := os.Remove(certFile); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), certFile) || cn(r) != "A" {
		t.Fatalf("missing file: %v, serving %q", err, cn(r))
	}

	b.WriteFiles(t, dir, "server")
	if err := r.Reload(); err != nil || cn(r) != "B" {
		t.Fatalf("reload of B: %v, serving %q", err, cn(r))
	}

	if _, err := tlsreload.New(certFile, certFile); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("New with no key: %v", err)
	}
	// one file holding both
	both := dir + "/both.pem"
	if err := os.WriteFile(both, append(append([]byte(nil), b.CertPEM...), b.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := tlsreload.New(both, both); err != nil || cn(r) != "B" {
		t.Fatalf("one file: %v", err)
	}
}

// Watch picks up a change of the files, including one written in two
// steps (a certificate first, then its key).
func TestWatch(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "A").WriteFiles(t, dir, "server")
	r, err := tlsreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan error, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Watch(ctx, 10*time.Millisecond, func(err error) { reports <- err })
	}()
	defer func() { cancel(); <-done }()
	next := func() error {
		t.Helper()
		select {
		case err := <-reports:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("no reload reported")
			return nil
		}
	}

	b := ca.Server(t, "B")
	testutil.WriteFileAtomic(t, certFile, b.CertPEM) // the key is still A's
	if err := next(); err == nil || !strings.Contains(err.Error(), "does not match") || cn(r) != "A" {
		t.Fatalf("half-replaced: %v, serving %q", err, cn(r))
	}
	testutil.WriteFileAtomic(t, keyFile, b.KeyPEM)
	if err := next(); err != nil || cn(r) != "B" {
		t.Fatalf("replaced: %v, serving %q", err, cn(r))
	}
	select {
	case err := <-reports:
		t.Fatalf("a reload of unchanged files: %v", err)
	case <-time.After(50 * time.Millisecond): // five polls
	}
}

// Over real connections: a new handshake gets the reloaded certificate, a
// connection made before keeps working, TLS 1.1 is refused, and h2 is
// never negotiated.
func TestServerConfig(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.Server(t, "A").WriteFiles(t, dir, "server")
	r, err := tlsreload.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		return c.(*tls.Conn), nil
	}
	echo := func(c *tls.Conn) {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q %v", buf, err)
		}
	}
	old, err := dial(&tls.Config{RootCAs: ca.Pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	st := old.ConnectionState()
	if st.PeerCertificates[0].Subject.CommonName != "A" || st.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("first connection: %q, ALPN %q", st.PeerCertificates[0].Subject.CommonName, st.NegotiatedProtocol)
	}
	echo(old)

	ca.Server(t, "B").WriteFiles(t, dir, "server")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	c, err := dial(&tls.Config{RootCAs: ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "B" {
		t.Fatalf("after the reload: %q, want B", got)
	}
	echo(c)
	echo(old)

	if _, err := dial(&tls.Config{RootCAs: ca.Pool, NextProtos: []string{"h2"}}); err == nil {
		t.Fatal("a client offering only h2 was accepted")
	}
	c11, err := dial(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c11.Close()
		t.Fatal("TLS 1.1 accepted")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("TLS 1.1: %v", err)
	}
}
