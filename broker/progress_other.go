//go:build !linux

package broker

import "syscall"

// unacked is not known on this system: progress is seen in completed
// writes only.
func unacked(syscall.RawConn) (int, bool) { return 0, false }
