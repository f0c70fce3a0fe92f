package perm

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// ErrInvalidRules is matched (errors.Is) by every error Compile and
// Lists.UnmarshalJSON return: the permissions themselves are wrong, whoever
// they were compiled for.
var ErrInvalidRules = errors.New("perm: invalid rules")

// RuleError is Compile's error: one rule that is not a valid filter or
// template.
type RuleError struct {
	List   string // "pub.allow", "pub.deny", "sub.allow" or "sub.deny"
	Index  int    // the rule's index in its list
	Rule   string // the rule as written
	Reason string // what is wrong with it
}

func (e *RuleError) Error() string {
	return "perm: " + e.List + "[" + strconv.Itoa(e.Index) + "] " +
		strconv.Quote(truncate(e.Rule, 64)) + ": " + e.Reason
}

// Unwrap returns ErrInvalidRules.
func (e *RuleError) Unwrap() error { return ErrInvalidRules }

// truncate shortens s to about n bytes for a message, on a rune boundary
// when s is UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	if !utf8.RuneStart(s[i]) {
		i = n
	}
	return s[:i] + "..."
}
