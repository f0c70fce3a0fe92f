//go:build !unix

package broker

import (
	"errors"
	"syscall"
)

const canReadNow = false // no read-ahead: every read waits in the caller's buffer

func readNow(syscall.RawConn, []byte) (int, error) {
	return 0, errors.New("ferry: read-ahead is not supported here")
}
