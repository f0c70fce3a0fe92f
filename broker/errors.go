package broker

import "errors"

// Errors returned by the in-process API.
var (
	ErrClosed   = errors.New("ferry: broker is shut down")
	ErrBadTopic = errors.New("ferry: invalid topic")
	ErrBadData  = errors.New("ferry: invalid data")
	ErrTooLarge = errors.New("ferry: message too large")
	ErrLimit    = errors.New("ferry: limit reached")
)
