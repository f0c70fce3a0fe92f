package client

// UncheckFrames makes new connections hand the broker's frame headers to
// gws unchecked (tests of the recovery from a panic in its read loop), and
// returns what undoes it.
func UncheckFrames() (restore func()) {
	uncheckedFrames.Store(true)
	return func() { uncheckedFrames.Store(false) }
}
