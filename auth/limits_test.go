package auth_test

import (
	"strings"
	"testing"

	"github.com/ferry-io/ferry/auth"
	"github.com/ferry-io/ferry/broker"
	"github.com/golang-jwt/jwt/v5"
)

// The ferry.limits claim becomes the identity's Limits; a claim holding
// only limits leaves the permissions to the ACL; a bad one refuses the
// token, saying which key.
func TestFerryLimitsClaim(t *testing.T) {
	j, err := auth.NewJWT(auth.JWTConfig{Secrets: [][]byte{secret1}})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(ferry any) (*broker.Identity, error) {
		c := valid("dev-1")
		c["ferry"] = ferry
		return j.Verify(sign(t, jwt.SigningMethodHS256, secret1, c))
	}
	id, err := verify(map[string]any{"pub": []string{"a/#"}, "limits": map[string]any{"pub_rate": 0.5, "pub_burst": 20, "max_subs": 50}})
	if err != nil {
		t.Fatal(err)
	}
	if id.Limits == nil || *id.Limits != (broker.Limits{PubRate: 0.5, PubBurst: 20, MaxSubscriptions: 50}) || id.Permissions == nil || id.Permissions.Pub.Allow[0] != "a/#" {
		t.Fatalf("identity %+v, limits %+v", id, id.Limits)
	}
	id, err = verify(map[string]any{"limits": map[string]any{"max_subs": 5}})
	if err != nil || id.Permissions != nil || id.Limits.MaxSubscriptions != 5 || id.Limits.PubRate != 0 {
		t.Fatalf("limits only: %+v %v", id, err)
	}
	id, err = verify(map[string]any{"pub": []string{"a/#"}})
	if err != nil || id.Limits != nil {
		t.Fatalf("no limits: %+v %v", id, err)
	}
	id, err = verify(map[string]any{})
	if err != nil || id.Permissions == nil || len(id.Permissions.Pub.Allow)+len(id.Permissions.Sub.Allow) != 0 {
		t.Fatalf("an empty ferry claim grants nothing (as before): %+v %v", id, err)
	}
	for _, tc := range []struct {
		limits any
		want   string
	}{
		{map[string]any{"pub_rate": -1}, "pub_rate: -1 is negative"},
		{map[string]any{"pub_burst": -2}, "pub_burst: -2 is negative"},
		{map[string]any{"max_subs": -3}, "max_subs: -3 is negative"},
		{map[string]any{"pub_rate": "10"}, "pub_rate: want a number, not string"},
		{map[string]any{"pub_burst": 2.5}, "pub_burst: want a whole number, not number 2.5"},
		{map[string]any{"max_subs": true}, "max_subs: want a whole number, not bool"},
		{map[string]any{"rate": 10}, `unknown key "rate"`},
		{[]int{1}, "must be an object"},
		{nil, "must be an object"},
	} {
		_, err := verify(map[string]any{"pub": []string{"a/#"}, "limits": tc.limits})
		if err == nil || !strings.HasPrefix(err.Error(), "invalid ferry claim: limits ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("limits %v: %v, want invalid ferry claim: limits ... %s", tc.limits, err, tc.want)
		}
	}
}
