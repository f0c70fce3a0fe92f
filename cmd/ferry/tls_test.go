package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil"
	"github.com/ferry-io/ferry/protocol"
)

// tlsFixture is a CA, a server certificate for 127.0.0.1 and localhost, and
// a device certificate with the CN dev-17, all in files.
type tlsFixture struct {
	dir             string
	ca              *testutil.CA
	caFile          string
	cert, key       string
	device          *testutil.Leaf
	devCert, devKey string
	server          *testutil.Leaf
	serverCN        string
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	f := &tlsFixture{dir: t.TempDir(), ca: testutil.NewCA(t, "ferry test CA")}
	f.caFile = filepath.Join(f.dir, "ca.pem")
	testutil.WriteFileAtomic(t, f.caFile, f.ca.PEM)
	f.server = f.ca.Server(t, "ferry A")
	f.cert, f.key = f.server.WriteFiles(t, f.dir, "server")
	f.device = f.ca.Client(t, "dev-17")
	f.devCert, f.devKey = f.device.WriteFiles(t, f.dir, "dev-17")
	return f
}

// host is the host:port of a ws:// or wss:// URL of ferry serve.
func host(url string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(url, "wss://"), "ws://"), "/ws")
}

// servedCert makes a TLS connection and returns the server's certificate.
func servedCert(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// upgradeTLS sends a WebSocket upgrade request over TLS and returns the
// status and the body.
func upgradeTLS(t *testing.T, url string, cfg *tls.Config) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "https://"+strings.TrimPrefix(url, "wss://"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	tr := &http.Transport{TLSClientConfig: cfg}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, "" // the body is the connection
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func TestServeTLSConfigErrors(t *testing.T) {
	f := newTLSFixture(t)
	bad := writeFile(t, "not PEM")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", f.cert}, "--tls-cert needs --tls-key"},
		{[]string{"--tls-key", f.key}, "--tls-key needs --tls-cert"},
		{[]string{"--tls-client-ca", f.caFile}, "--tls-client-ca needs --tls-cert and --tls-key"},
		{[]string{"--tls-identity", "san"}, "--tls-identity needs"},
		{[]string{"--tls-cert", f.cert, "--tls-key", f.key, "--tls-identity", "cn"}, "--tls-identity needs --tls-client-ca"},
		{[]string{"--tls-identity", "serial"}, "-tls-identity: want cn or san"},
		{[]string{"--tls-cert", "/nonexistent/cert.pem", "--tls-key", f.key}, "--tls-cert, --tls-key: open /nonexistent/cert.pem"},
		{[]string{"--tls-cert", bad, "--tls-key", f.key}, bad + ": no PEM CERTIFICATE block"},
		{[]string{"--tls-cert", f.cert, "--tls-key", f.devKey}, "does not match"},
		{[]string{"--tls-cert", f.cert, "--tls-key", f.key, "--tls-client-ca", bad}, "--tls-client-ca: " + bad},
		{[]string{"--tls-cert", f.cert, "--tls-key", f.key, "--listen", "0.0.0.0:0"}, "client certificates (--tls-client-ca), or pass --allow-anonymous"},
	} {
		var out, errb strings.Builder
		code := run(append([]string{"serve", "--listen", "127.0.0.1:0"}, tc.args...), &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("serve %v: exit %d, stderr %q; want exit 2 naming %s", tc.args, code, errb.String(), tc.want)
		}
	}
	// client certificates are authentication: any address may be used, and
	// --acl has identities to grant to
	acl := writeFile(t, `[{"identity": "dev-*", "pub": ["telemetry/{sub}/#"]}]`)
	if _, err := parseServe([]string{"--listen", "0.0.0.0:7420", "--tls-cert", f.cert, "--tls-key", f.key, "--tls-client-ca", f.caFile, "--acl", acl}, io.Discard); err != nil {
		t.Fatal(err)
	}
}

// ferry serve over TLS with client certificates and an ACL: the Go client,
// a Python websockets client and curl; what is refused, and how.
func TestServeTLS(t *testing.T) {
	f := newTLSFixture(t)
	acl := writeFile(t, `[{"identity": "dev-*", "pub": ["telemetry/{sub}/#"], "sub": ["telemetry/{sub}/#"]}]`)
	p := startFerry(t, "--tls-cert", f.cert, "--tls-key", f.key, "--tls-client-ca", f.caFile, "--acl", acl)
	if !strings.HasPrefix(p.url, "wss://127.0.0.1:") {
		t.Fatalf("ferry reports %s, want a wss:// URL", p.url)
	}
	addr := host(p.url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("Go client with a client certificate", func(t *testing.T) {
		c, err := client.Connect(ctx, p.url, client.WithTLS(&tls.Config{RootCAs: f.ca.Pool, Certificates: []tls.Certificate{f.device.TLS}}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := make(chan *client.Message, 1)
		if _, err := c.Subscribe(ctx, "telemetry/dev-17/#", func(m *client.Message) error { got <- m; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, "telemetry/dev-17/x", 21.5); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if m.Topic != "telemetry/dev-17/x" || string(m.Data) != "21.5" {
				t.Fatalf("got %s %s", m.Topic, m.Data)
			}
		case <-ctx.Done():
			t.Fatal("no message")
		}
		var be *client.Error
		if err := c.Publish(ctx, "telemetry/dev-18/x", 1); !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
			t.Fatalf("publish to another device's topic: %v, want forbidden", err)
		}
		if _, err := c.Subscribe(ctx, "telemetry/#", func(*client.Message) error { return nil }); !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
			t.Fatalf("subscribe to every device: %v, want forbidden", err)
		}
	})

	t.Run("no certificate and no token", func(t *testing.T) {
		code, body := upgradeTLS(t, p.url, &tls.Config{RootCAs: f.ca.Pool})
		if code != 401 || !strings.Contains(body, "no credential") || !strings.Contains(body, "client certificate") {
			t.Fatalf("%d %q, want 401 naming the client certificate", code, body)
		}
		if code, body := upgradeTLS(t, p.url, &tls.Config{RootCAs: f.ca.Pool, Certificates: []tls.Certificate{f.device.TLS}}); code != 101 {
			t.Fatalf("with the certificate: %d %q", code, body)
		}
	})

	t.Run("certificate of another CA", func(t *testing.T) {
		other := testutil.NewCA(t, "another CA").Client(t, "dev-17").TLS
		for _, max := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			// (a Go client sends only certificates of a CA the server
			// names: this one sends it anyway, as a device of another CA would)
			_, err := client.Connect(ctx, p.url, client.WithTLS(&tls.Config{RootCAs: f.ca.Pool, MaxVersion: max,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other, nil }}))
			if err == nil || !strings.Contains(err.Error(), "remote error: tls") {
				t.Fatalf("TLS %x: %v, want a TLS alert", max, err)
			}
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: f.ca.Pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			c.Close()
			t.Fatal("TLS 1.1 accepted")
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Fatalf("TLS 1.1: %v", err)
		}
	})

	t.Run("HTTP/1.1 only", func(t *testing.T) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{RootCAs: f.ca.Pool, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Fatalf("negotiated %q", got)
		}
	})

	t.Run("plain ws:// refused", func(t *testing.T) {
		_, err := client.Connect(ctx, "ws://"+addr+"/ws")
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Fatalf("ws:// to the TLS port: %v, want a refusal", err)
		}
	})

	t.Run("curl", func(t *testing.T) {
		curl, err := exec.LookPath("curl")
		if err != nil {
			t.Skip("no curl")
		}
		out, err := exec.CommandContext(ctx, curl, "-sS", "--fail", "--cacert", f.caFile, "https://"+addr+"/healthz").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status":"ok"`) {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})

	t.Run("Python websockets with a client certificate", func(t *testing.T) {
		py := pythonWithWebsockets(t)
		script := `
import asyncio, json, ssl, sys, websockets
async def main():
    url, ca, cert, key = sys.argv[1:5]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    async with websockets.connect(url, ssl=ctx) as ws:
        await ws.send(json.dumps({"op": "sub", "topic": "telemetry/dev-17/#", "id": 1}))
        print(await ws.recv())
        await ws.send(json.dumps({"op": "pub", "topic": "telemetry/dev-17/py", "data": "from python", "id": 2}))
        print(await ws.recv())
        print(await ws.recv())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    try:
        async with websockets.connect(url, ssl=ctx):
            print("connected without a certificate")
    except websockets.exceptions.InvalidStatusCode as e:
        print("refused", e.status_code)
asyncio.run(main())
`
		out, err := exec.CommandContext(ctx, py, "-c", script, p.url, f.caFile, f.devCert, f.devKey).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		for _, want := range []string{`{"op":"ack","id":1}`, `{"op":"ack","id":2}`, `{"op":"msg","topic":"telemetry/dev-17/py","data":"from python"}`, "refused 401"} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("python output lacks %s:\n%s", want, out)
			}
		}
	})
}

// The certificate is replaced without a restart: a broken replacement
// keeps the one in use; SIGHUP and a change of the files load a good one;
// new connections get it while a connection made before goes on.
func TestServeTLSReload(t *testing.T) {
	f := newTLSFixture(t)
	p := startFerry(t, "--tls-cert", f.cert, "--tls-key", f.key)
	addr := host(p.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if got := servedCert(t, addr, f.ca.Pool); got.SerialNumber.Cmp(f.server.Cert.SerialNumber) != 0 {
		t.Fatalf("serving %v, want A", got.Subject)
	}

	var mu sync.Mutex
	var statuses []client.Status
	c, err := client.Connect(ctx, p.url, client.WithTLS(&tls.Config{RootCAs: f.ca.Pool}),
		client.OnStatus(func(s client.Status, _ error) { mu.Lock(); statuses = append(statuses, s); mu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan *client.Message, 4)
	if _, err := c.Subscribe(ctx, "t/#", func(m *client.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}

	// a broken file: A stays
	testutil.WriteFileAtomic(t, f.cert, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "TLS certificate not reloaded", 1)
	p.waitLog(t, f.cert, 2) // named in the warning (and in the start line)
	if got := servedCert(t, addr, f.ca.Pool); got.SerialNumber.Cmp(f.server.Cert.SerialNumber) != 0 {
		t.Fatalf("after a broken replacement: serving %v, want A", got.Subject)
	}

	// B, and SIGHUP
	b := f.ca.Server(t, "ferry B")
	b.WriteFiles(t, f.dir, "server")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "TLS certificate reloaded", 1)
	if got := servedCert(t, addr, f.ca.Pool); got.SerialNumber.Cmp(b.Cert.SerialNumber) != 0 || got.Subject.CommonName != "ferry B" {
		t.Fatalf("after SIGHUP: serving %v, want B", got.Subject)
	}

	// C, without a signal: the files are looked at every few seconds
	cc := f.ca.Server(t, "ferry C")
	cc.WriteFiles(t, f.dir, "server")
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, "certificate C served", func() bool {
		return servedCert(t, addr, f.ca.Pool).SerialNumber.Cmp(cc.Cert.SerialNumber) == 0
	})

	// the connection made with A goes on
	if err := c.Publish(ctx, "t/x", "after the reloads"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if string(m.Data) != `"after the reloads"` {
			t.Fatalf("got %s", m.Data)
		}
	case <-ctx.Done():
		t.Fatal("no message on the connection made before the reloads")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range statuses {
		if s != client.Connecting && s != client.Connected {
			t.Fatalf("the client's connection was replaced: %v", statuses)
		}
	}
	if _, err := os.Stat(f.cert); err != nil {
		t.Fatal(err)
	}
}

// Tokens and client certificates together: a token decides when one is
// sent, the certificate otherwise, and a request with neither is told of
// both.
func TestServeTLSTokenAndCertificate(t *testing.T) {
	f := newTLSFixture(t)
	acl := writeFile(t, `[{"identity": "dev-*", "pub": ["telemetry/{sub}/#"]}]`)
	p := startFerry(t, "--tls-cert", f.cert, "--tls-key", f.key, "--tls-client-ca", f.caFile, "--acl", acl, "--jwt-secret-file", writeSecret(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code, body := upgradeTLS(t, p.url, &tls.Config{RootCAs: f.ca.Pool})
	if code != 401 || body != "ferry: no credential: send Authorization: Bearer, a ferry.bearer.* subprotocol or ?token=; or present a client certificate" {
		t.Fatalf("neither: %d %q", code, body)
	}
	withCert := func(opts ...client.Option) *client.Client {
		t.Helper()
		c, err := client.Connect(ctx, p.url, append(opts, client.WithTLS(&tls.Config{RootCAs: f.ca.Pool, Certificates: []tls.Certificate{f.device.TLS}}))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	tok := hs256("a-secret-of-at-least-16-bytes", map[string]any{"sub": "user-1", "exp": time.Now().Add(time.Hour).Unix(),
		"ferry": map[string]any{"pub": []string{"dash/#"}}})
	var be *client.Error
	byToken := withCert(client.WithToken(tok))
	if err := byToken.Publish(ctx, "dash/x", 1); err != nil {
		t.Fatalf("token's grant: %v", err)
	}
	if err := byToken.Publish(ctx, "telemetry/dev-17/x", 1); !errors.As(err, &be) || be.Code != protocol.CodeForbidden {
		t.Fatalf("the certificate's grant with a token sent: %v, want forbidden", err)
	}
	byCert := withCert()
	if err := byCert.Publish(ctx, "telemetry/dev-17/x", 1); err != nil {
		t.Fatalf("certificate's grant: %v", err)
	}
	if _, err := client.Connect(ctx, p.url, client.WithToken(tok+"x"), client.WithTLS(&tls.Config{RootCAs: f.ca.Pool, Certificates: []tls.Certificate{f.device.TLS}})); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a bad token with a good certificate: %v, want 401", err)
	}
}
