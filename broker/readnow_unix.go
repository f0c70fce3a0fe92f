//go:build unix

package broker

import (
	"io"
	"syscall"
)

const canReadNow = true

// readNow reads what has arrived on raw into b without waiting for more:
// n is 0 (and err nil) when nothing has.
func readNow(raw syscall.RawConn, b []byte) (n int, err error) {
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), b)
		return true // one attempt: never wait for readability
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == syscall.EAGAIN || rerr == syscall.EINTR:
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
