package perm

import (
	"fmt"
	"testing"
)

// benchRules returns n allowed rules like a fleet's, a few denied ones, and
// a device number k whose telemetry is allowed.
func benchRules(n int) (r Rules, k int) {
	l := Lists{Deny: []string{"telemetry/+/debug/#", "telemetry/dev-1/secret", "$SYS/#"}}
	for i := 0; len(l.Allow) < n; i++ {
		switch i % 4 {
		case 0, 1:
			l.Allow = append(l.Allow, fmt.Sprintf("telemetry/dev-%d/#", i))
		case 2:
			l.Allow = append(l.Allow, fmt.Sprintf("status/dev-%d", i))
		case 3:
			l.Allow = append(l.Allow, fmt.Sprintf("cmd/+/dev-%d/reboot", i))
		}
		if i%100 == 99 {
			l.Deny = append(l.Deny, fmt.Sprintf("status/dev-%d", i-1))
		}
	}
	l.Allow[len(l.Allow)-1] = "telemetry/{sub}/#"
	l.Allow[len(l.Allow)-2] = "cmd/{sub}/+"
	k = n / 2
	for k%4 > 1 {
		k--
	}
	return Rules{Pub: l, Sub: l}, k
}

var benchID = Identity{Subject: "dev-17", Claims: map[string]any{"site": "berlin"}}

var sink bool

func benchSet(b *testing.B, n int) (*Set, int) {
	r, k := benchRules(n)
	s, err := Compile(r, benchID)
	if err != nil {
		b.Fatal(err)
	}
	return s, k
}

func BenchmarkCanPublish(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			s, k := benchSet(b, n)
			for _, c := range []struct {
				name, topic string
				want        bool
			}{
				{"allowed", fmt.Sprintf("telemetry/dev-%d/temp/room-2", k), true},
				{"denied", fmt.Sprintf("telemetry/dev-%d/debug/trace", k), false}, // allowed, then denied
				{"unmatched", "telemetry/dev-x/temp/room-2", false},
			} {
				if s.CanPublish(c.topic) != c.want {
					b.Fatalf("CanPublish(%q) != %v", c.topic, c.want)
				}
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						sink = s.CanPublish(c.topic)
					}
				})
			}
		})
	}
}

func BenchmarkCanSubscribe(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			s, k := benchSet(b, n)
			for _, c := range []struct {
				name, filter string
				want         bool
			}{
				{"allowed", fmt.Sprintf("telemetry/dev-%d/temp/+", k), true},
				{"denied", fmt.Sprintf("telemetry/dev-%d/#", k), false}, // a subset, but overlaps a deny
				{"unmatched", "telemetry/+/temp", false},
			} {
				if s.CanSubscribe(c.filter) != c.want {
					b.Fatalf("CanSubscribe(%q) != %v", c.filter, c.want)
				}
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						sink = s.CanSubscribe(c.filter)
					}
				})
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			r, _ := benchRules(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(r, benchID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestNoAllocations checks every way through the tries, the walk over many
// names under a '+' included, for allocations.
func TestNoAllocations(t *testing.T) {
	r, k := benchRules(1000)
	for i := range 100 {
		r.Sub.Deny = append(r.Sub.Deny, fmt.Sprintf("deny/n-%d/x", i))
	}
	r.Sub.Allow = append(r.Sub.Allow, "#", "$SYS/#")
	s, err := Compile(r, benchID)
	if err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("dev-%d", k)
	for _, topic := range []string{"telemetry/" + dev + "/temp", "telemetry/" + dev + "/debug/x", "status/dev-2", "x", "$SYS/x", "cmd/a/dev-3/reboot"} {
		if n := testing.AllocsPerRun(100, func() { sink = s.CanPublish(topic) }); n != 0 {
			t.Errorf("CanPublish(%q): %v allocations", topic, n)
		}
	}
	for _, f := range []string{"deny/+/x", "deny/+/y", "+/+/x", "#", "+/#", "telemetry/" + dev + "/#", "telemetry/+/temp", "$SYS/#", "status/+"} {
		if n := testing.AllocsPerRun(100, func() { sink = s.CanSubscribe(f) }); n != 0 {
			t.Errorf("CanSubscribe(%q): %v allocations", f, n)
		}
	}
	if s.CanSubscribe("deny/+/x") || !s.CanSubscribe("deny/+/y") {
		t.Error("the deny list is compiled wrong")
	}
}
