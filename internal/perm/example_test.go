package perm_test

import (
	"encoding/json"
	"fmt"

	"github.com/ferry-io/ferry/internal/perm"
)

func Example() {
	// the "ferry" claim of a device's token
	claim := `{"pub": ["telemetry/{sub}/#"],
	           "sub": {"allow": ["cmd/{sub}/+", "dash/{claim:site}/#"], "deny": ["dash/{claim:site}/admin/#"]}}`
	var r perm.Rules
	if err := json.Unmarshal([]byte(claim), &r); err != nil {
		fmt.Println(err)
		return
	}
	s, err := perm.Compile(r, perm.Identity{Subject: "dev-17", Claims: map[string]any{"site": "berlin"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.CanPublish("telemetry/dev-17/temp"))
	fmt.Println(s.CanPublish("telemetry/dev-18/temp"))
	fmt.Println(s.CanSubscribe("cmd/dev-17/+"))
	fmt.Println(s.CanSubscribe("dash/berlin/room-1/#"))
	fmt.Println(s.CanSubscribe("dash/berlin/#")) // it would get admin's topics too
	// Output:
	// true
	// false
	// true
	// true
	// false
}

func ExampleCompile_error() {
	_, err := perm.Compile(perm.Rules{Sub: perm.Lists{Allow: []string{"cmd/dev-{sub}/+"}}}, perm.Identity{})
	fmt.Println(err)
	// Output:
	// perm: sub.allow[0] "cmd/dev-{sub}/+": level 2 "dev-{sub}": a placeholder ({sub} or {claim:NAME}) must fill a whole level, and '{' and '}' appear nowhere else
}
