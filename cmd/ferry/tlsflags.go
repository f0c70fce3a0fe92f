package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/tlsreload"
)

// tlsFlags are the flags of TLS and client certificates, and what they
// load.
type tlsFlags struct {
	cert, key, clientCA string
	identity            certFieldFlag

	certs  *tlsreload.Reloader
	config *tls.Config // nil without TLS
}

// certFieldFlag is --tls-identity: cn or san, and whether it was given.
type certFieldFlag struct {
	field auth.CertField
	set   bool
}

func (f *certFieldFlag) String() string { return f.field.String() }
func (f *certFieldFlag) Set(s string) error {
	v, err := auth.ParseCertField(s)
	if err != nil {
		return errors.New("want cn or san")
	}
	f.field, f.set = v, true
	return nil
}

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate file (with any intermediates after it): serve wss:// and https://, reloaded on SIGHUP and when the file changes; needs --tls-key")
	fs.StringVar(&t.key, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&t.clientCA, "tls-client-ca", "", "PEM file of CA certificates: a client certificate they signed authenticates the client (a token, when sent, decides instead)")
	fs.Var(&t.identity, "tls-identity", "the client certificate's field that is the identity: cn (default: the subject's common name) or san (the first DNS name, else email, else URI)")
}

// setup loads the certificate and the client CAs, and adds client
// certificates to the ways opts authenticates.
func (t *tlsFlags) setup(opts *broker.Options) error {
	switch {
	case t.cert == "" && t.key == "":
		if t.clientCA != "" {
			return errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		if t.identity.set {
			return errors.New("--tls-identity needs --tls-cert, --tls-key and --tls-client-ca")
		}
		return nil
	case t.key == "":
		return errors.New("--tls-cert needs --tls-key")
	case t.cert == "":
		return errors.New("--tls-key needs --tls-cert")
	}
	certs, err := tlsreload.New(t.cert, t.key)
	if err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	t.certs, t.config = certs, certs.ServerConfig()
	if t.clientCA == "" {
		if t.identity.set {
			return errors.New("--tls-identity needs --tls-client-ca")
		}
		return nil
	}
	pool, err := loadCertPool(t.clientCA)
	if err != nil {
		return fmt.Errorf("--tls-client-ca: %w", err)
	}
	t.config.ClientCAs, t.config.ClientAuth = pool, tls.VerifyClientCertIfGiven
	m := auth.ClientCertificate(t.identity.field)
	if opts.Authenticate != nil {
		m = auth.Chain(opts.Authenticate, m) // a token, when sent, decides
	}
	opts.Authenticate = m
	return nil
}

// loadCertPool reads a PEM bundle of CA certificates.
func loadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
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
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", path, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", path)
	}
	return pool, nil
}

// listen wraps ln in TLS, when configured, and keeps the certificate up to
// date (SIGHUP, and a look at the files every few seconds) until stop is
// called. It returns the WebSocket URL scheme.
func (t *tlsFlags) listen(ln net.Listener, srv *http.Server, log *slog.Logger) (_ net.Listener, scheme string, stop func()) {
	if t.config == nil {
		return ln, "ws", func() {}
	}
	// a WebSocket upgrade needs HTTP/1.1: h2 is neither offered (ALPN) nor
	// served
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	report := func(how string) func(error) {
		return func(err error) {
			if err != nil {
				log.Warn("ferry: TLS certificate not reloaded, the one in use stays", "trigger", how, "err", err)
				return
			}
			logCertificate(log, "ferry: TLS certificate reloaded", t.certs.Certificate(), "trigger", how)
		}
	}
	logCertificate(log, "ferry: TLS certificate", t.certs.Certificate(), "cert", t.cert,
		"client_ca", t.clientCA, "identity", t.identity.field)
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var wg sync.WaitGroup
	wg.Go(func() { t.certs.Watch(ctx, 0, report("file changed")) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				report("SIGHUP")(t.certs.Reload())
			}
		}
	})
	return tls.NewListener(ln, t.config), "wss", func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

func logCertificate(log *slog.Logger, msg string, c *tls.Certificate, args ...any) {
	if l := c.Leaf; l != nil {
		args = append(args, "subject", l.Subject.String(), "serial", l.SerialNumber.String(), "not_after", l.NotAfter.UTC())
	}
	log.Info(msg, args...)
}
