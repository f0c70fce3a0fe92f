package broker

import "testing"

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"*", "", true}, {"*", "dev-1", true}, {"dev-*", "dev-1", true}, {"dev-*", "dev-", true},
		{"dev-*", "xdev-1", false}, {"*-1", "dev-1", true}, {"d*v*1", "dev-1", true}, {"d*v*2", "dev-1", false},
		{"dev-1", "dev-1", true}, {"dev-1", "dev-10", false}, {"a*b*c", "abbbc", true}, {"a*b*c", "ac", false},
	} {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}
