package broker_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ferry-io/ferry/broker"
	"github.com/ferry-io/ferry/protocol"
)

// The in-process API's errors are matchable: the package's sentinel with
// errors.Is, and the protocol error (its code) with errors.As.
func TestPublishErrorsWrap(t *testing.T) {
	b, _ := startBroker(t, broker.Options{MaxRetained: 1})
	ctx := context.Background()
	err := b.Publish(ctx, broker.Message{Topic: "a/+", Data: []byte(`1`)})
	var perr *protocol.Error
	if !errors.Is(err, broker.ErrBadTopic) || !errors.As(err, &perr) || perr.Code != protocol.CodeBadTopic {
		t.Fatalf("wildcard topic: %v", err)
	}
	if err := b.Publish(ctx, broker.Message{Topic: "r/1", Data: []byte(`1`), Retain: true}); err != nil {
		t.Fatal(err)
	}
	err = b.Publish(ctx, broker.Message{Topic: "r/2", Data: []byte(`1`), Retain: true})
	if !errors.Is(err, broker.ErrLimit) || !errors.As(err, &perr) || perr.Code != protocol.CodeLimit {
		t.Fatalf("over the retained limit: %v", err)
	}
	_, err = b.Subscribe("a/#/b", func(*broker.Message) error { return nil })
	if !errors.Is(err, broker.ErrBadTopic) || !errors.As(err, &perr) || perr.Code != protocol.CodeBadTopic {
		t.Fatalf("bad filter: %v", err)
	}
}

// unconfirmed is a cluster that sends nothing and confirms nothing: what a
// Cluster returns for a message it could not confirm.
type unconfirmed struct{ broker.ClusterNode }

func (unconfirmed) Start(broker.ClusterNode) error { return nil }
func (unconfirmed) Publish(context.Context, broker.ClusterMessage, bool) error {
	return broker.ErrNotConfirmed
}
func (unconfirmed) Interest(string, bool) error      { return nil }
func (unconfirmed) Group(string, string, bool) error { return nil }
func (unconfirmed) Connected() bool                  { return true }
func (unconfirmed) Status() broker.ClusterStatus     { return broker.ClusterStatus{Connected: true} }
func (unconfirmed) Close() error                     { return nil }

func TestPublishNotConfirmedIs(t *testing.T) {
	b, _ := startBroker(t, broker.Options{Cluster: unconfirmed{}})
	err := b.Publish(context.Background(), broker.Message{Topic: "a", Data: []byte(`1`)})
	var perr *protocol.Error
	if !errors.Is(err, broker.ErrNotConfirmed) || !errors.As(err, &perr) || perr.Code != protocol.CodeInternal {
		t.Fatalf("unconfirmed publish: %v", err)
	}
}
