// Package tlsreload serves a TLS certificate from files and loads it again,
// without a restart, when asked (on SIGHUP, say) or when the files change.
//
// A Reloader's GetCertificate fits tls.Config.GetCertificate: every
// handshake reads the current certificate through an atomic pointer, so a
// reload never blocks a handshake, and connections already established
// keep the certificate they were made with. A reload that fails (a file
// missing or half written, PEM that does not parse, a key that does not
// match the certificate) keeps the certificate in use and returns an error
// naming the file.
//
// Concurrency: every method is safe for concurrent use.
//
// An embedding application serves WebSocket over TLS with, for example:
//
//	certs, err := tlsreload.New("/etc/ferry/tls.crt", "/etc/ferry/tls.key")
//	if err != nil { ... }
//	go certs.Watch(ctx, 0, func(err error) { ... log it ... })
//	srv := &http.Server{Handler: mux, TLSConfig: certs.ServerConfig(), Protocols: new(http.Protocols)}
//	srv.Protocols.SetHTTP1(true) // WebSocket upgrades need HTTP/1.1, not h2
//	err = srv.ServeTLS(ln, "", "")
package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Watch looks at the files when given no
// interval.
const DefaultInterval = 5 * time.Second

// Reloader holds a certificate and its key loaded from two PEM files (one
// file may hold both: pass it twice).
type Reloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]

	mu   sync.Mutex  // serializes reloads
	seen [2]fileStat // the files as they were at the last attempt to load them
}

// fileStat is what Watch compares to tell that a file changed.
type fileStat struct {
	info os.FileInfo // nil: the file could not be read
}

func stat(path string) fileStat {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}
	}
	return fileStat{info: fi}
}

func (a fileStat) same(b fileStat) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) && a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime())
}

// New loads the certificate (with any intermediate certificates after it)
// from certFile and its private key from keyFile, or returns an error
// naming the file that is wrong.
func New(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// GetCertificate returns the current certificate; it implements
// tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// Certificate returns the current certificate; its Leaf is parsed.
func (r *Reloader) Certificate() *tls.Certificate { return r.cur.Load() }

// Reload loads the files again, whether they changed or not. On failure the
// current certificate stays in use and the error names the file.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

func (r *Reloader) reloadLocked() error {
	// stat before reading: a file that changes while it is read differs
	// from what was recorded, so that Watch tries again
	r.seen = [2]fileStat{stat(r.certFile), stat(r.keyFile)}
	c, err := load(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cur.Store(c)
	return nil
}

// Watch looks at the files every interval (DefaultInterval when it is not
// positive) until ctx is done, and reloads them when one changed (its
// size, modification time, or the file itself, replaced by a rename or a
// symlink swap). It calls report after each reload it attempts: with nil
// when the new certificate is in use, with the error when the old one
// stays. A file that fails to load is tried again when it changes again,
// so a file written in two steps is picked up once complete. report may
// be nil.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, report func(error)) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tried, err := r.reloadIfChanged()
		if tried && report != nil {
			report(err)
		}
	}
}

// reloadIfChanged reloads the files if either changed since the last
// attempt.
func (r *Reloader) reloadIfChanged() (tried bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[0].same(stat(r.certFile)) && r.seen[1].same(stat(r.keyFile)) {
		return false, nil
	}
	return true, r.reloadLocked()
}

// ServerConfig returns a TLS configuration for a WebSocket server with the
// Reloader's certificate: TLS 1.2 at least, and HTTP/1.1 as the only
// application protocol (ALPN), since a WebSocket upgrade takes over an
// HTTP/1.1 connection and cannot be made over h2. An http.Server's
// ServeTLS adds "h2" back unless the server's Protocols (or TLSNextProto)
// leave HTTP/2 out; serving on tls.NewListener(ln, cfg) does not.
// Client certificates are for the caller to add (ClientCAs, ClientAuth).
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: r.GetCertificate,
	}
}

// load reads and checks a certificate and its key, naming the file at
// fault in an error.
func load(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	if err := checkCertificates(certPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	if err := checkKey(keyPEM); err != nil {
		return nil, fmt.Errorf("%s: %w", keyFile, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the key in %s does not match the certificate in %s: %w", keyFile, certFile, err)
	}
	return &c, nil
}

// checkCertificates checks that the PEM holds certificates, each valid
// DER.
func checkCertificates(b []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		n++
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n, err)
		}
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	return nil
}

// checkKey checks that the PEM holds a private key in a form crypto/tls
// reads: PKCS #8, PKCS #1 (RSA) or SEC 1 (EC).
func checkKey(b []byte) error {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return errors.New("no PEM PRIVATE KEY block")
		}
		if !strings.HasSuffix(blk.Type, "PRIVATE KEY") {
			continue
		}
		if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			return nil
		}
		if _, err := x509.ParsePKCS1PrivateKey(blk.Bytes); err == nil {
			return nil
		}
		if _, err := x509.ParseECPrivateKey(blk.Bytes); err == nil {
			return nil
		}
		return fmt.Errorf("a %s block that is not a PKCS #8, PKCS #1 or SEC 1 private key", blk.Type)
	}
}
