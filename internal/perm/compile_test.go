package perm

import (
	"errors"
	"strings"
	"testing"
)

func TestTemplates(t *testing.T) {
	id := Identity{Subject: "dev-17", Claims: map[string]any{"sub": "dev-17", "site": "berlin", "room": "r-2"}}
	s, err := Compile(Rules{
		Pub: Lists{Allow: list("telemetry/{sub}/# status/{sub}")},
		Sub: Lists{
			Allow: list("cmd/{sub}/+ dash/{claim:site}/# {claim:site}/{claim:room}/+ $SYS/{sub}/#"),
			Deny:  list("dash/{claim:site}/admin/#"),
		},
	}, id)
	if err != nil {
		t.Fatal(err)
	}
	pub := map[string]bool{
		"telemetry/dev-17":           true,
		"telemetry/dev-17/temp":      true,
		"telemetry/dev-18/temp":      false,
		"telemetry/{sub}/temp":       false,
		"telemetry/dev-17x/temp":     false,
		"status/dev-17":              true,
		"status/dev-17/x":            false,
		"cmd/dev-17/reboot":          false, // a sub rule
		"telemetry/dev-1/temp":       false,
		"telemetry/dev-17/temp/more": true,
	}
	for topic, want := range pub {
		if got := s.CanPublish(topic); got != want {
			t.Errorf("CanPublish(%q) = %v, want %v", topic, got, want)
		}
	}
	sub := map[string]bool{
		"cmd/dev-17/+":        true,
		"cmd/dev-17/reboot":   true,
		"cmd/dev-18/reboot":   false,
		"cmd/+/reboot":        false,
		"dash/berlin/#":       false, // overlaps the denied admin
		"dash/berlin/+":       false, // "dash/berlin/admin"
		"dash/berlin/x/+":     true,
		"dash/berlin/admin":   false,
		"dash/berlin/x/#":     true,
		"dash/paris/x":        false,
		"berlin/r-2/light":    true,
		"berlin/r-3/light":    false,
		"$SYS/dev-17/uptime":  true,
		"$SYS/dev-18/uptime":  false,
		"dash/{claim:site}/x": false,
	}
	for f, want := range sub {
		if got := s.CanSubscribe(f); got != want {
			t.Errorf("CanSubscribe(%q) = %v, want %v", f, got, want)
		}
	}
}

// TestTemplateValuesDropAllow checks that a value that cannot fill a level
// drops the allowed rule using it, and only that rule.
func TestTemplateValuesDropAllow(t *testing.T) {
	values := []struct {
		name  string
		value any // nil: missing claim
		sub   bool
	}{
		{"plus", "+", true},
		{"hash", "#", true},
		{"two levels", "a/b", true},
		{"slash first", "/a", true},
		{"slash last", "a/", true},
		{"dollar", "$SYS", true},
		{"dollar later", "$", true},
		{"empty", "", true},
		{"NUL", "a\x00b", true},
		{"not UTF-8", "a\xffb", true},
		{"plus inside", "a+b", true},
		{"hash inside", "a#", true},
		{"missing claim", nil, false},
		{"number claim", 17.0, false},
		{"integer claim", 17, false},
		{"boolean claim", true, false},
		{"list claim", []any{"a"}, false},
		{"object claim", map[string]any{"a": "b"}, false},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			var id Identity
			rule := "telemetry/{claim:x}/#"
			if v.sub {
				s, _ := v.value.(string)
				id.Subject = s
				rule = "telemetry/{sub}/#"
			} else if v.value != nil {
				id.Claims = map[string]any{"x": v.value}
			}
			r := Lists{Allow: []string{rule, "status/#", "{sub}", "{claim:x}/y"}}
			s, err := Compile(Rules{Pub: r, Sub: r}, id)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"telemetry/#", "telemetry/+", "telemetry/+/+", "#", "+", "+/y", "$SYS/#", "telemetry/a/b"} {
				if s.CanSubscribe(f) {
					t.Errorf("CanSubscribe(%q) = true", f)
				}
			}
			for _, topic := range []string{"telemetry", "telemetry/a", "telemetry/a/b", "telemetry/$SYS/x", "$SYS", "$SYS/y", "a", "a/b/y", "y"} {
				if s.CanPublish(topic) {
					t.Errorf("CanPublish(%q) = true", topic)
				}
			}
			if !s.CanPublish("status/x") || !s.CanSubscribe("status/#") {
				t.Error("the rule without a placeholder was dropped as well")
			}
		})
	}
}

// TestTemplateValuesWidenDeny checks that a value that cannot fill a level
// makes the denied rule using it deny everything it could have meant.
func TestTemplateValuesWidenDeny(t *testing.T) {
	tests := []struct {
		deny    string
		allowed []string // still permitted
		denied  []string
	}{
		{"telemetry/{sub}/#", []string{"status/x", "telemetryx"},
			[]string{"telemetry", "telemetry/a", "telemetry/a/b", "telemetry/+/temp"}},
		{"a/+/{sub}/x", []string{"a", "b/c/d/x"},
			[]string{"a/b", "a/b/c", "a/b/c/x", "a/b/c/d/e"}},
		{"a/{sub}", []string{"b", "b/a"}, []string{"a", "a/b", "a/b/c"}},
		{"$SYS/{sub}", []string{"a"}, []string{"$SYS", "$SYS/x"}},
		{"{sub}/secret", nil, []string{"a", "status/x", "$SYS/x", "$other"}},
		{"{claim:x}", nil, []string{"a", "$SYS/x"}},
	}
	for _, tt := range tests {
		for _, sub := range []string{"+", "#", "a/b", "$SYS", ""} {
			r := Lists{Allow: list("# $SYS/# $other"), Deny: []string{tt.deny, "never/matched"}}
			s, err := Compile(Rules{Pub: r, Sub: r}, Identity{Subject: sub})
			if err != nil {
				t.Fatal(err)
			}
			for _, topic := range tt.allowed {
				if !s.CanPublish(topic) || !s.CanSubscribe(topic) {
					t.Errorf("deny %q, sub %q: %q is refused", tt.deny, sub, topic)
				}
			}
			for _, topic := range tt.denied {
				if !strings.ContainsAny(topic, "+#") && s.CanPublish(topic) {
					t.Errorf("deny %q, sub %q: CanPublish(%q) = true", tt.deny, sub, topic)
				}
				if s.CanSubscribe(topic) {
					t.Errorf("deny %q, sub %q: CanSubscribe(%q) = true", tt.deny, sub, topic)
				}
			}
		}
	}
}

func TestTemplateValuesFit(t *testing.T) {
	for _, v := range []string{"dev-17", "a b", "a$", "ümlaut", "{sub}", "a.b", "x}"} {
		s, err := Compile(Rules{Pub: Lists{Allow: list("t/{sub}/#"), Deny: list("t/{sub}/no")}}, Identity{Subject: v})
		if err != nil {
			t.Fatal(err)
		}
		if !s.CanPublish("t/" + v + "/x") {
			t.Errorf("sub %q: CanPublish(t/%s/x) = false", v, v)
		}
		if s.CanPublish("t/"+v+"/no") || s.CanPublish("t/other/x") {
			t.Errorf("sub %q: the rules are filled wrong", v)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		rule string
		want string // a part of the reason
	}{
		{"a/x{sub}", "whole level"},
		{"a/x{sub}/b", `level 2 "x{sub}"`},
		{"a/{sub}x/b", "whole level"},
		{"a/{sub}{sub}", "whole level"},
		{"{{sub}}", "whole level"},
		{"a/{sub", "whole level"},
		{"a/sub}", "whole level"},
		{"a/{claim:x", "whole level"},
		{"{claim:a/b}", "whole level"},
		{"a{b", "whole level"},
		{"{unknown}", "unknown placeholder"},
		{"{Sub}", "unknown placeholder"},
		{"{ sub }", "unknown placeholder"},
		{"{}", "unknown placeholder"},
		{"{claim}", "unknown placeholder"},
		{"{claim:}", "without a NAME"},
		{"a/#/b", "'#' must be the last level"},
		{"{sub}/#/b", "'#' must be the last level"},
		{"a/b#", "whole level"},
		{"a+/b", "whole level"},
		{"a//b", "empty level"},
		{"/a", "empty level"},
		{"a/", "empty level"},
		{"", "empty"},
		{"a\x00", "U+0000"},
		{"a/\xff", "UTF-8"},
	}
	for _, tt := range tests {
		for _, name := range []string{"pub.allow", "pub.deny", "sub.allow", "sub.deny"} {
			var r Rules
			l := &r.Pub
			if strings.HasPrefix(name, "sub") {
				l = &r.Sub
			}
			rules := []string{"ok/#", "{sub}/ok", tt.rule}
			if strings.HasSuffix(name, "allow") {
				l.Allow = rules
			} else {
				l.Deny = rules
			}
			s, err := Compile(r, Identity{Subject: "dev-1"})
			if err == nil {
				t.Errorf("%s %q: no error", name, tt.rule)
				continue
			}
			if s != nil {
				t.Errorf("%s %q: a Set with the error", name, tt.rule)
			}
			var re *RuleError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRules) {
				t.Fatalf("%s %q: error %v (%T) is not a RuleError matching ErrInvalidRules", name, tt.rule, err, err)
			}
			if re.List != name || re.Index != 2 || re.Rule != tt.rule {
				t.Errorf("%s %q: error names %s[%d] %q", name, tt.rule, re.List, re.Index, re.Rule)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "perm: "+name+"[2] ") || !strings.Contains(msg, tt.want) {
				t.Errorf("%s %q: error %q, want it to name the rule and mention %q", name, tt.rule, msg, tt.want)
			}
		}
	}
}

func TestCompileValid(t *testing.T) {
	// rules that are fine whoever they are compiled for
	for _, rule := range []string{
		"#", "+", "a", "$SYS/#", "{sub}", "{claim:site}", "{claim:a.b}", "{claim:with space}",
		"{claim:sub}", "{claim:$x}", "+/{sub}/#", "$SYS/{sub}/+", "a/b$/c", strings.Repeat("long/", 200) + "x",
	} {
		r := Lists{Allow: []string{rule}, Deny: []string{rule}}
		if _, err := Compile(Rules{Pub: r, Sub: r}, Identity{}); err != nil {
			t.Errorf("Compile(%q): %v", rule, err)
		}
	}
}

func TestRuleErrorMessage(t *testing.T) {
	_, err := Compile(Rules{Sub: Lists{Deny: []string{"a/x{sub}/" + strings.Repeat("b", 300)}}}, Identity{})
	msg := err.Error()
	if len(msg) > 300 || !strings.HasPrefix(msg, `perm: sub.deny[0] "a/x{sub}/bbb`) {
		t.Errorf("message %q", msg)
	}
	_, err = Compile(Rules{Pub: Lists{Allow: []string{"a/\n{x}"}}}, Identity{})
	if msg := err.Error(); strings.ContainsAny(msg, "\n") {
		t.Errorf("message %q holds a newline", msg)
	}
}
