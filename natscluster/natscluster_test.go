package natscluster_test

import (
	"fmt"
	"testing"

	"github.com/ferry-io/ferry/natscluster"
)

func TestSubjects(t *testing.T) {
	for _, tc := range []struct{ topic, subject string }{
		{"a/b", "ferry.a.b"},
		{"a.b/c d", "ferry.~YS5i.~YyBk"},
		{"$SYS/x", "ferry.~JFNZUw.x"},
		{"~/*/>", "ferry.~fg.~Kg.~Pg"},
		{"dev-1/temp_c", "ferry.dev-1.temp_c"},
	} {
		if got := natscluster.Subject("ferry", tc.topic); got != tc.subject {
			t.Errorf("Subject(%q) = %q, want %q", tc.topic, got, tc.subject)
		}
		if back, ok := natscluster.Topic("ferry", tc.subject); !ok || back != tc.topic {
			t.Errorf("Topic(%q) = %q %v", tc.subject, back, ok)
		}
	}
	for _, tc := range []struct {
		filter string
		want   []string
	}{
		{"a/+/c", []string{"ferry.a.*.c"}},
		{"a/#", []string{"ferry.a", "ferry.a.>"}},
		{"#", []string{"ferry.>"}},
		{"+/x.y", []string{"ferry.*.~eC55"}},
	} {
		got := natscluster.FilterSubjects("ferry", tc.filter)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("FilterSubjects(%q) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}
