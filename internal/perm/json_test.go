package perm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestListsJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Lists
	}{
		{`["a/#", "b/+"]`, Lists{Allow: []string{"a/#", "b/+"}}},
		{`[]`, Lists{Allow: []string{}}},
		{` [ "a" ] `, Lists{Allow: []string{"a"}}},
		{`{"allow": ["a/#"], "deny": ["a/b"]}`, Lists{Allow: []string{"a/#"}, Deny: []string{"a/b"}}},
		{`{"deny": ["a/b"], "allow": ["a/#"]}`, Lists{Allow: []string{"a/#"}, Deny: []string{"a/b"}}},
		{`{"allow": ["a"]}`, Lists{Allow: []string{"a"}}},
		{`{"deny": ["a"]}`, Lists{Deny: []string{"a"}}},
		{`{}`, Lists{}},
		{`{"allow": null, "deny": null}`, Lists{}},
		{`null`, Lists{}},
		{`["a\u002fb", "\u00fc"]`, Lists{Allow: []string{"a/b", "ü"}}},
	}
	for _, tt := range tests {
		l := Lists{Allow: []string{"old"}, Deny: []string{"old"}}
		if err := json.Unmarshal([]byte(tt.in), &l); err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if tt.in == "null" {
			// encoding/json leaves a value alone for null
			continue
		}
		if !reflect.DeepEqual(l, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.in, l, tt.want)
		}
	}
	var l Lists
	if err := l.UnmarshalJSON([]byte("null")); err != nil || !reflect.DeepEqual(l, Lists{}) {
		t.Errorf("UnmarshalJSON(null) = %v, %#v", err, l)
	}
}

func TestListsJSONInvalid(t *testing.T) {
	tests := []struct {
		in   string
		want string // a part of the error
	}{
		{`"a/#"`, "not a string"},
		{`17`, "not a number"},
		{`true`, "not a boolean"},
		{`[1]`, "filter 0 is a number"},
		{`["a", null]`, "filter 1 is null"},
		{`["a", ["b"]]`, "filter 1 is a list"},
		{`["a", {"b": 1}]`, "filter 1 is an object"},
		{`{"allow": "a/#"}`, `"allow": want a list of filters, not a string`},
		{`{"deny": {"allow": []}}`, `"deny": want a list of filters, not an object`},
		{`{"allow": [true]}`, `"allow": filter 0 is a boolean`},
		{`{"Allow": ["a"]}`, `unknown key "Allow"`},
		{`{"denny": ["a"]}`, `unknown key "denny"`},
		{`{"allow": ["a"], "pub": ["b"]}`, `unknown key "pub"`},
		{`{"deny": ["a"], "deny": []}`, `"deny" appears twice`},
		{`{"allow": [], "allow": ["#"]}`, `"allow" appears twice`},
	}
	for _, tt := range tests {
		var l Lists
		err := json.Unmarshal([]byte(tt.in), &l)
		if err == nil {
			t.Errorf("%s: no error, got %#v", tt.in, l)
			continue
		}
		if !errors.Is(err, ErrInvalidRules) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "perm: ") {
			t.Errorf("%s: error %q, want ErrInvalidRules mentioning %q", tt.in, err, tt.want)
		}
	}
	// called directly, with what encoding/json would not pass on
	for _, in := range []string{``, ` `, `nope`, `[`, `{`, `{"allow": [}`, `["a"`} {
		var l Lists
		if err := l.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("UnmarshalJSON(%q): no error", in)
		}
	}
}

func TestRulesJSON(t *testing.T) {
	// the claim of the contract's example, with limits beside the rules
	claim := `{"pub": ["telemetry/{sub}/#"],
		"sub": {"allow": ["cmd/{sub}/+", "dash/{claim:site}/#"], "deny": ["$SYS/#"]},
		"limits": {"pub_rate": 10}}`
	var r Rules
	if err := json.Unmarshal([]byte(claim), &r); err != nil {
		t.Fatal(err)
	}
	want := Rules{
		Pub: Lists{Allow: []string{"telemetry/{sub}/#"}},
		Sub: Lists{Allow: []string{"cmd/{sub}/+", "dash/{claim:site}/#"}, Deny: []string{"$SYS/#"}},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %#v, want %#v", r, want)
	}
	s, err := Compile(r, Identity{Subject: "dev-17", Claims: map[string]any{"site": "berlin"}})
	if err != nil {
		t.Fatal(err)
	}
	if !s.CanPublish("telemetry/dev-17/temp") || !s.CanSubscribe("cmd/dev-17/+") || !s.CanSubscribe("dash/berlin/#") ||
		s.CanSubscribe("dash/paris/#") || s.CanPublish("cmd/dev-17/x") || s.CanSubscribe("$SYS/x") {
		t.Error("the example's permissions are compiled wrong")
	}

	// what Marshal writes reads back the same
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var back Rules
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("%s read back as %#v, %v", b, back, err)
	}

	// a bad list fails the whole
	if err := json.Unmarshal([]byte(`{"pub": ["a"], "sub": {"alow": ["#"]}}`), &r); !errors.Is(err, ErrInvalidRules) {
		t.Errorf("error %v", err)
	}
}
