package client_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/client"
	"github.com/ferry-io/ferry/internal/testutil"
)

// WithTLS over wss://: the client verifies the broker with the roots it is
// given, presents its certificate (the identity, with the broker's ACL),
// and does both again on every reconnect.
func TestWithTLS(t *testing.T) {
	ca := testutil.NewCA(t, "test CA")
	server := ca.Server(t, "broker")
	cfg := &tls.Config{Certificates: []tls.Certificate{server.TLS}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"},
		ClientCAs: ca.Pool, ClientAuth: tls.VerifyClientCertIfGiven}
	tb := newTestBrokerTLS(t, broker.Options{Authenticate: auth.ClientCertificate(auth.CertCommonName),
		ACL: []broker.ACLEntry{{Identity: "dev-*", Permissions: broker.Permissions{
			Pub: broker.PermissionLists{Allow: []string{"t/{sub}/#"}}, Sub: broker.PermissionLists{Allow: []string{"t/{sub}/#"}}}}}}, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	// the system's roots do not know the test CA
	var unknown x509.UnknownAuthorityError
	if _, err := client.Connect(ctx, tb.url()); !errors.As(err, &unknown) {
		t.Fatalf("without the CA: %v, want an unknown authority", err)
	}
	// the right roots, but no certificate: 401
	if _, err := client.Connect(ctx, tb.url(), client.WithTLS(&tls.Config{RootCAs: ca.Pool})); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a client certificate: %v, want 401", err)
	}

	connected := make(chan struct{}, 8)
	c, err := client.Connect(ctx, tb.url(), client.WithLogger(quietLogger(t)),
		client.WithTLS(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{ca.Client(t, "dev-17").TLS}}),
		client.OnStatus(func(s client.Status, _ error) {
			if s == client.Connected {
				connected <- struct{}{}
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 8)
	if _, err := c.Subscribe(ctx, "t/dev-17/#", func(m *client.Message) error { got <- string(m.Data); return nil }); err != nil {
		t.Fatal(err)
	}
	roundTrip := func(data string) {
		t.Helper()
		if err := c.Publish(ctx, "t/dev-17/x", data); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			if d != `"`+data+`"` {
				t.Fatalf("got %s, want %q", d, data)
			}
		case <-ctx.Done():
			t.Fatal("no message")
		}
	}
	roundTrip("first")
	var be *client.Error
	if err := c.Publish(ctx, "t/dev-18/x", 1); !errors.As(err, &be) || be.Code != "forbidden" {
		t.Fatalf("another device's topic: %v", err)
	}

	<-connected
	tb.stop()
	tb.start()
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("no reconnect")
	}
	roundTrip("after the reconnect")
}
