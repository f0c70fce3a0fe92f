package broker

import (
	"syscall"
	"unsafe"
)

// siocoutq is Linux's SIOCOUTQ (TIOCOUTQ): the bytes of a TCP socket's
// send queue its peer has not acknowledged yet.
const siocoutq = 0x5411

// unacked returns how many bytes written to raw its peer has not
// acknowledged yet.
func unacked(raw syscall.RawConn) (int, bool) {
	var n int32
	var errno syscall.Errno
	err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocoutq, uintptr(unsafe.Pointer(&n)))
	})
	if err != nil || errno != 0 {
		return 0, false
	}
	return int(n), true
}
