package perm

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ferry-io/ferry/protocol"
)

// Compile checks the rules and compiles them, with their templates filled
// for id, into a Set.
//
// Every rule must be a valid filter (protocol.ValidateFilter, with no limit
// on its length) in which a level may also be a placeholder: {sub}, filled
// with id.Subject, or {claim:NAME}, filled with the string claim NAME. A
// placeholder fills a whole level; '{' and '}' appear nowhere else. A rule
// breaking this is an error (a *RuleError naming the rule), whoever the
// rules are compiled for: Compile(r, Identity{}) checks rules on their own.
//
// A value that cannot fill a level is not an error: a value that is empty,
// starts with '$', holds '/', '+', '#' or NUL or is not UTF-8, or a claim
// that is missing or not a string. An allowed rule with such a value is dropped (it allows
// nothing), so that an identity like "a/b" or "+" cannot widen what it is
// granted. A denied rule with such a value denies everything it could have
// meant, the levels before the placeholder followed by '#' ("a/{sub}/b"
// denies "a/#"), or, with the placeholder at the first level, every topic:
// dropping it would widen the grant as well.
func Compile(r Rules, id Identity) (*Set, error) {
	s := &Set{}
	if err := s.pub.add("pub", r.Pub, id); err != nil {
		return nil, err
	}
	if err := s.sub.add("sub", r.Sub, id); err != nil {
		return nil, err
	}
	return s, nil
}

// add checks and compiles l into t; name is "pub" or "sub".
func (t *tree) add(name string, l Lists, id Identity) error {
	for i, rule := range l.Allow {
		if err := check(rule); err != "" {
			return &RuleError{List: name + ".allow", Index: i, Rule: rule, Reason: err}
		}
		if f, bad := fill(rule, id); bad < 0 {
			t.allow.insert(f)
		}
	}
	for i, rule := range l.Deny {
		if err := check(rule); err != "" {
			return &RuleError{List: name + ".deny", Index: i, Rule: rule, Reason: err}
		}
		switch f, bad := fill(rule, id); {
		case bad < 0:
			t.deny.insert(f)
		case bad == 0:
			t.denyAll = true
		default:
			// f is the levels before the bad one, each followed by '/'
			t.deny.insert(f + "#")
		}
	}
	return nil
}

// check returns what is wrong with a rule, or "" when it is a valid
// template.
func check(rule string) string {
	// A placeholder is a name as far as the filter's rules go.
	if err := protocol.ValidateFilter(rule, math.MaxInt); err != nil {
		return err.Reason
	}
	if strings.IndexByte(rule, '{') < 0 && strings.IndexByte(rule, '}') < 0 {
		return ""
	}
	for i, s := 1, rule; ; i++ {
		level, rest, last := cut(s)
		if _, _, err := placeholder(level); err != "" {
			return "level " + strconv.Itoa(i) + " " + strconv.Quote(truncate(level, 32)) + ": " + err
		}
		if last {
			return ""
		}
		s = rest
	}
}

// placeholder tells what a level of a valid template is: a name (ok false),
// {sub} (claim "") or {claim:NAME}.
func placeholder(level string) (claim string, ok bool, err string) {
	if !strings.ContainsAny(level, "{}") {
		return "", false, ""
	}
	inner, open := strings.CutPrefix(level, "{")
	inner, closed := strings.CutSuffix(inner, "}")
	if !open || !closed || strings.ContainsAny(inner, "{}") {
		return "", false, "a placeholder ({sub} or {claim:NAME}) must fill a whole level, and '{' and '}' appear nowhere else"
	}
	if inner == "sub" {
		return "", true, ""
	}
	name, found := strings.CutPrefix(inner, "claim:")
	switch {
	case !found:
		return "", false, "unknown placeholder; there are {sub} and {claim:NAME}"
	case name == "":
		return "", false, "{claim:NAME} without a NAME"
	}
	return name, true, ""
}

// fill returns the checked template rule with its placeholders filled for
// id, and bad -1; or, when a value cannot fill its level, the index (from 0)
// of the first such level, bad, and the levels before it, each followed by
// '/'.
func fill(rule string, id Identity) (filter string, bad int) {
	if strings.IndexByte(rule, '{') < 0 {
		return rule, -1
	}
	var b strings.Builder
	b.Grow(len(rule) + len(id.Subject))
	for i, s := 0, rule; ; i++ {
		level, rest, last := cut(s)
		if claim, ok, _ := placeholder(level); ok {
			v := id.Subject
			if claim != "" {
				v, _ = id.Claims[claim].(string)
			}
			if !fits(v) {
				return b.String(), i
			}
			level = v
		}
		b.WriteString(level)
		if last {
			return b.String(), -1
		}
		b.WriteByte('/')
		s = rest
	}
}

// fits reports whether v can fill a level: a name, not the broker's, that
// widens nothing.
func fits(v string) bool {
	return v != "" && v[0] != '$' && !strings.ContainsAny(v, "/+#\x00") && utf8.ValidString(v)
}
