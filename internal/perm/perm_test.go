package perm

import (
	"fmt"
	"strings"
	"testing"
)

// both compiles allow and deny as the Pub and the Sub lists, with no
// templates to fill.
func both(t testing.TB, allow, deny []string) *Set {
	t.Helper()
	s, err := Compile(Rules{Pub: Lists{allow, deny}, Sub: Lists{allow, deny}}, Identity{})
	if err != nil {
		t.Fatalf("Compile(allow %q, deny %q): %v", allow, deny, err)
	}
	return s
}

// list splits a space-separated list of filters; "" is none.
func list(s string) []string { return strings.Fields(s) }

func TestCanPublish(t *testing.T) {
	tests := []struct {
		allow, deny string
		topic       string
		want        bool
	}{
		// nothing matching means denied
		{"", "", "a", false},
		{"", "", "$SYS/x", false},
		{"", "a", "a", false},
		{"b", "", "a", false},

		// names
		{"a/b", "", "a/b", true},
		{"a/b", "", "a/c", false},
		{"a/b", "", "a", false},
		{"a/b", "", "a/b/c", false},
		{"a/b", "", "ab", false},
		{"a/b", "", "A/b", false},
		{"a", "", "a", true},

		// '+' is one level
		{"a/+", "", "a/b", true},
		{"a/+", "", "a", false},
		{"a/+", "", "a/b/c", false},
		{"+/b", "", "a/b", true},
		{"+/+", "", "a/b", true},
		{"+", "", "a", true},
		{"+", "", "a/b", false},
		{"a/+/c", "", "a/b/c", true},
		{"a/+/c", "", "a/b/d", false},

		// '#' is zero or more levels
		{"a/#", "", "a", true},
		{"a/#", "", "a/b", true},
		{"a/#", "", "a/b/c/d", true},
		{"a/#", "", "b", false},
		{"a/#", "", "ab/c", false},
		{"#", "", "a", true},
		{"#", "", "a/b/c", true},
		{"+/#", "", "a", true},
		{"+/#", "", "a/b", true},
		{"a/+/#", "", "a", false},
		{"a/+/#", "", "a/b", true},

		// several rules: any one allows
		{"x/y a/+ b/#", "", "a/b", true},
		{"x/y a/+ b/#", "", "b/c/d", true},
		{"x/y a/+ b/#", "", "x/z", false},
		{"a/b/c +/b/d", "", "a/b/d", true},
		{"a/b/c a/+/d", "", "a/b/d", true}, // the literal branch fails, '+' does not

		// deny beats allow
		{"a/#", "a/b", "a/b", false},
		{"a/#", "a/b", "a/c", true},
		{"a/#", "a/b", "a/b/c", true},
		{"a/#", "a/b", "a", true},
		{"a/#", "a/#", "a", false},
		{"a/b", "a/b", "a/b", false},
		{"#", "+/secret/#", "x/secret", false},
		{"#", "+/secret/#", "x/secret/y", false},
		{"#", "+/secret/#", "secret", true},
		{"#", "+/secret/#", "x/public", true},
		{"#", "#", "a", false},
		{"a/b", "+/+", "a/b", false},
		{"telemetry/#", "telemetry/+/debug/#", "telemetry/dev-1/debug", false},
		{"telemetry/#", "telemetry/+/debug/#", "telemetry/dev-1/temp", true},

		// '$' topics need a rule naming them
		{"#", "", "$SYS", false},
		{"#", "", "$SYS/x", false},
		{"+/#", "", "$SYS/x", false},
		{"+", "", "$a", false},
		{"+/x", "", "$a/x", false},
		{"+/x", "", "a/x", true},
		{"$SYS/#", "", "$SYS/x", true},
		{"$SYS/#", "", "$SYS", true},
		{"$SYS/#", "", "$SYSX/x", false},
		{"$SYS/#", "", "$other/x", false},
		{"$SYS/+", "", "$SYS/x", true},
		{"$SYS/x", "", "$SYS/x", true},
		{"# $SYS/#", "", "$SYS/x", true},
		{"#", "", "a/$b", true}, // '$' counts at the first level only
		{"a/+", "", "a/$b", true},
		// ...and a deny of "#" does not deny them either
		{"$SYS/#", "#", "$SYS/x", true},
		{"$SYS/# a/#", "#", "a/x", false},
		{"$SYS/#", "+/x", "$SYS/x", true},
		{"$SYS/#", "$SYS/x", "$SYS/x", false},

		// inputs outside the precondition are refused
		{"#", "", "", false},
		{"#", "", "a/+", false},
		{"#", "", "a/#", false},
		{"+/+", "", "a/+", false},
	}
	for _, tt := range tests {
		s := both(t, list(tt.allow), list(tt.deny))
		if got := s.CanPublish(tt.topic); got != tt.want {
			t.Errorf("allow %q deny %q: CanPublish(%q) = %v, want %v", tt.allow, tt.deny, tt.topic, got, tt.want)
		}
		// a topic is also a filter matching just itself
		if tt.topic != "" && !strings.ContainsAny(tt.topic, "+#") {
			if got := s.CanSubscribe(tt.topic); got != tt.want {
				t.Errorf("allow %q deny %q: CanSubscribe(%q) = %v, want %v as CanPublish", tt.allow, tt.deny, tt.topic, got, tt.want)
			}
		}
	}
}

func TestCanSubscribe(t *testing.T) {
	tests := []struct {
		allow, deny string
		filter      string
		want        bool
	}{
		{"", "", "a", false},
		{"", "", "#", false},

		// a subset of an allowed filter
		{"telemetry/dev-1/#", "", "#", false},
		{"telemetry/dev-1/#", "", "telemetry/#", false},
		{"telemetry/dev-1/#", "", "telemetry/+", false},
		{"telemetry/dev-1/#", "", "telemetry/+/temp", false},
		{"telemetry/dev-1/#", "", "telemetry/dev-1/+", true},
		{"telemetry/dev-1/#", "", "telemetry/dev-1/#", true},
		{"telemetry/dev-1/#", "", "telemetry/dev-1/+/+", true},
		{"telemetry/dev-1/#", "", "telemetry/dev-1/temp", true},
		{"telemetry/dev-1/#", "", "telemetry/dev-1", true},
		{"telemetry/dev-1/#", "", "telemetry/dev-2/temp", false},
		{"telemetry/dev-1/#", "", "telemetry", false},
		{"a/#", "", "a", true}, // '#' matches zero levels

		{"a/+", "", "a/+", true},
		{"a/#", "", "a/+", true},
		{"+/+", "", "a/+", true},
		{"+/#", "", "a/+", true},
		{"#", "", "a/+", true},
		{"a/b", "", "a/+", false},
		{"+", "", "a/+", false},
		{"a/+/+", "", "a/+", false},
		{"a/+/#", "", "a/+", true},
		{"a/b a/c", "", "a/+", false},

		{"a/#", "", "a/#", true},
		{"#", "", "a/#", true},
		{"+/#", "", "a/#", true},
		{"a/+", "", "a/#", false},
		{"a/+/#", "", "a/#", false}, // "a/#" matches "a"
		{"a/b/#", "", "a/#", false},
		{"a", "", "a/#", false},

		{"#", "", "#", true},
		{"+/#", "", "#", true}, // no topic has zero levels
		{"#", "", "+/#", true},
		{"+/#", "", "+/#", true},
		{"+/+/#", "", "#", false},
		{"+", "", "#", false},
		{"+", "", "+", true},
		{"#", "", "+", true},
		{"+/+", "", "+", false},

		// one allowed filter must hold the whole subscription: a union
		// that happens to cover it is not enough
		{"a a/+/#", "", "a/#", false},
		{"a/b a/+", "", "a/+", true},

		// overlapping no denied filter
		{"a/#", "a/b/c", "a/#", false},
		{"a/#", "a/b/c", "a/b", true},
		{"a/#", "a/b/c", "a/b/d", true},
		{"a/#", "a/b/c", "a/b/+", false},
		{"a/#", "a/b/c", "a/+/c", false},
		{"a/#", "a/b/c", "a/+/d", true},
		{"a/#", "a/b/c", "a/b/c/d", true},
		{"a/#", "a/b/c", "a/+", true},
		{"#", "a/+", "a/x", false},
		{"#", "a/+", "a/x/y", true},
		{"#", "a/+", "a", true},
		{"#", "a/+", "a/#", false},

		// '+' in the subscription against the deny list
		{"#", "a/#", "a/+", false},
		{"#", "a/b/#", "a/+", false},
		{"#", "a/b/c", "a/+", true},
		{"#", "+/+/c", "a/+", true},
		{"#", "+/b", "a/+", false},
		{"#", "+", "a/+", true},
		{"#", "a", "a/+", true},
		{"#", "#", "a/+", false},
		{"#", "a/b/+", "a/+/c", false},
		{"#", "a/+/d", "a/+/c", true},
		{"#", "a/b/c/d", "a/+/c", true},
		{"#", "a/b/c/#", "a/+/c", false}, // '#' matches zero levels
		{"#", "a/b x/+", "+/b", false},
		{"#", "a/b x/+", "+/c", false}, // "x/c"
		{"#", "a/b x/b", "+/c", true},
		{"#", "x/y/z", "+/+/+", false},

		// '#' in the subscription against the deny list
		{"#", "+/+/c", "a/#", false},
		{"#", "b/#", "a/#", true},
		{"#", "+", "a/#", false}, // "a/#" matches "a"
		{"#", "a", "a/#", false},
		{"#", "b", "a/#", true},
		{"#", "a/+/+/+/x", "a/#", false},
		{"#", "a/+", "a/b/#", false},
		{"#", "a/+/+/d", "a/b/#", false},
		{"#", "a/c/#", "a/b/#", true},
		{"#", "a/b/c/d", "#", false},
		{"#", "+/+/+", "#", false},
		{"#", "+/#", "#", false},
		{"#", "x", "#", false},
		{"#", "x/y", "+/#", false},

		// '$' topics
		{"#", "", "$SYS/#", false},
		{"#", "", "$SYS/x", false},
		{"#", "", "$SYS", false},
		{"+/#", "", "$SYS/x", false},
		{"+/x", "", "$SYS/x", false},
		{"$SYS/#", "", "$SYS/#", true},
		{"$SYS/#", "", "$SYS/x", true},
		{"$SYS/#", "", "$SYS/+", true},
		{"$SYS/#", "", "$SYS", true},
		{"$SYS/#", "", "$SYSX/#", false},
		{"$SYS/#", "", "#", false},
		{"$SYS/#", "", "+/#", false},
		{"$SYS/+", "", "$SYS/+", true},
		{"$SYS/+", "", "$SYS/#", false},
		{"# $SYS/#", "", "$SYS/x", true},
		{"#", "$SYS/#", "#", true}, // '#' matches no '$' topic
		{"#", "$SYS/#", "+/#", true},
		{"#", "$SYS/#", "+", true},
		{"#", "$a", "+", true},
		{"#", "$a/x", "+/x", true},
		{"#", "$a/#", "+/+/+", true},
		{"$a/#", "+/x", "$a/x", true}, // nor does '+' at the first level
		{"$a/#", "+/#", "$a/#", true},
		{"$a/#", "#", "$a/#", true},
		{"$a/#", "$a/+", "$a/#", false},
		{"$a/#", "$a/x/#", "$a/+", false},
		{"#", "", "a/$b", true},
		{"#", "+/$b", "a/+", false},

		// outside the precondition
		{"#", "", "", false},
	}
	for _, tt := range tests {
		s := both(t, list(tt.allow), list(tt.deny))
		if got := s.CanSubscribe(tt.filter); got != tt.want {
			t.Errorf("allow %q deny %q: CanSubscribe(%q) = %v, want %v", tt.allow, tt.deny, tt.filter, got, tt.want)
		}
	}
}

// TestListsApart checks that pub is checked with the Pub lists only and
// sub with the Sub lists only.
func TestListsApart(t *testing.T) {
	s, err := Compile(Rules{
		Pub: Lists{Allow: list("telemetry/dev-1/#"), Deny: list("telemetry/dev-1/secret")},
		Sub: Lists{Allow: list("cmd/dev-1/+"), Deny: list("cmd/dev-1/halt")},
	}, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		topic    string
		pub, sub bool
	}{
		{"telemetry/dev-1/temp", true, false},
		{"telemetry/dev-1/secret", false, false},
		{"cmd/dev-1/reboot", false, true},
		{"cmd/dev-1/halt", false, false},
		{"other", false, false},
	} {
		if got := s.CanPublish(c.topic); got != c.pub {
			t.Errorf("CanPublish(%q) = %v, want %v", c.topic, got, c.pub)
		}
		if got := s.CanSubscribe(c.topic); got != c.sub {
			t.Errorf("CanSubscribe(%q) = %v, want %v", c.topic, got, c.sub)
		}
	}
}

func TestEmptySets(t *testing.T) {
	var nilSet *Set
	empty, err := Compile(Rules{}, Identity{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Set{nilSet, empty, {}} {
		for _, topic := range []string{"a", "a/b", "$SYS/x"} {
			if s.CanPublish(topic) {
				t.Errorf("%p: CanPublish(%q) = true", s, topic)
			}
		}
		for _, f := range []string{"a", "#", "+", "$SYS/#"} {
			if s.CanSubscribe(f) {
				t.Errorf("%p: CanSubscribe(%q) = true", s, f)
			}
		}
	}
}

func TestAny(t *testing.T) {
	s := Any()
	for _, topic := range []string{"a", "a/b/c", "$SYS", "$SYS/broker/uptime", "$x/y"} {
		if !s.CanPublish(topic) {
			t.Errorf("CanPublish(%q) = false", topic)
		}
	}
	for _, f := range []string{"a", "#", "+", "+/#", "$SYS/#", "$SYS/+", "$x"} {
		if !s.CanSubscribe(f) {
			t.Errorf("CanSubscribe(%q) = false", f)
		}
	}
	if s.CanPublish("a/+") || s.CanPublish("") || s.CanSubscribe("") {
		t.Error("Any permits an invalid topic")
	}
}

// TestManyNames checks nodes with more children for names than their
// slices keep.
func TestManyNames(t *testing.T) {
	var allow, deny []string
	for i := range 20 {
		allow = append(allow, fmt.Sprintf("a/n-%d", i), fmt.Sprintf("$s-%d/#", i))
	}
	deny = append(deny, "a/n-3", "$s-4/x", "b/+")
	for i := range 12 {
		deny = append(deny, fmt.Sprintf("c-%d/x", i))
	}
	s := both(t, allow, deny)
	for topic, want := range map[string]bool{
		"a/n-0": true, "a/n-19": true, "a/n-3": false, "a/n-20": false, "a": false,
		"$s-0/y": true, "$s-4/y": true, "$s-4/x": false, "$s-20/y": false,
	} {
		if got := s.CanPublish(topic); got != want {
			t.Errorf("CanPublish(%q) = %v, want %v", topic, got, want)
		}
	}
	for f, want := range map[string]bool{
		"a/n-0": true, "a/n-3": false, "a/+": false, "$s-4/#": false, "$s-4/+/y": true, "$s-5/#": true,
	} {
		if got := s.CanSubscribe(f); got != want {
			t.Errorf("CanSubscribe(%q) = %v, want %v", f, got, want)
		}
	}
	// '+' and '#' at the first level meet the "c-N/x" but none of the '$'
	// names
	s = both(t, list("#"), deny)
	for f, want := range map[string]bool{"+/x": false, "+/y": false /* b/+ */, "#": false, "+": true, "+/+/+": true} {
		if got := s.CanSubscribe(f); got != want {
			t.Errorf("allow #: CanSubscribe(%q) = %v, want %v", f, got, want)
		}
	}
	s = both(t, list("#"), list("$a $b $c $d $e $f $g $h $i $j $k/#"))
	if !s.CanSubscribe("#") || !s.CanSubscribe("+") || !s.CanSubscribe("+/+") {
		t.Error("denied '$' names refuse a wildcard at the first level")
	}
}
