package broker

import "errors"

// Errors returned by the in-process API.
var (
	ErrClosed   = errors.New("ferry: broker is shut down")
	ErrBadTopic = errors.New("ferry: invalid topic")
	ErrBadData  = errors.New("ferry: invalid data")
	ErrTooLarge = errors.New("ferry: message too large")
	ErrLimit    = errors.New("ferry: limit reached")
	// ErrNotConfirmed is what a Cluster's Publish returns when it sent a
	// message but the cluster did not confirm it: the publish fails (the
	// publisher may send it again) and is not delivered locally.
	ErrNotConfirmed = errors.New("ferry: cluster did not confirm the message")
)
