package protocol_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferry-io/ferry/protocol"
)

// checkTopicErr asserts that err is a bad_topic error whose reason is
// readable and mentions want.
func checkTopicErr(t *testing.T, what string, err *protocol.Error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want bad_topic mentioning %q", what, want)
	}
	if err.Code != protocol.CodeBadTopic {
		t.Errorf("%s: code %q, want %q", what, err.Code, protocol.CodeBadTopic)
	}
	checkReadable(t, what, err.Reason)
	if !strings.Contains(err.Reason, want) {
		t.Errorf("%s: reason %q does not mention %q", what, err.Reason, want)
	}
	if got := err.Error(); got != err.Code+": "+err.Reason {
		t.Errorf("%s: Error() = %q", what, got)
	}
}

// checkReadable asserts a reason is non-empty, valid UTF-8 and free of raw
// control characters, so it can be shown to a person as is.
func checkReadable(t *testing.T, what, reason string) {
	t.Helper()
	if reason == "" {
		t.Errorf("%s: empty reason", what)
	}
	if !utf8.ValidString(reason) {
		t.Errorf("%s: reason %q is not valid UTF-8", what, reason)
	}
	for _, r := range reason {
		if r < 0x20 || r == 0x7f {
			t.Errorf("%s: reason %q holds control character %U", what, reason, r)
			break
		}
	}
	if len(reason) > 300 {
		t.Errorf("%s: reason is %d bytes long", what, len(reason))
	}
}

func TestValidateTopic(t *testing.T) {
	long := strings.Repeat("a", protocol.DefaultMaxTopicBytes)
	tests := []struct {
		name  string
		topic string
		max   int
		want  string // "" for valid, else a part of the reason
	}{
		{"one level", "a", 0, ""},
		{"levels", "telemetry/device-17/temp", 0, ""},
		{"spaces and punctuation", "a b/c.d/e-f_g/ünï/😀", 0, ""},
		{"dollar", "$SYS/broker/clients", 0, ""},
		{"dollar alone", "$", 0, ""},
		{"dollar inside", "a/$b", 0, ""},
		{"default limit exactly", long, 0, ""},
		{"negative limit means default", long, -1, ""},
		{"custom limit exactly", "abcde", 5, ""},
		{"unicode at limit", "é", 2, ""},

		{"empty", "", 0, "empty"},
		{"over default limit", long + "b", 0, "257 bytes"},
		{"over default limit reason", long + "b", 0, "256"},
		{"over custom limit", "abcdef", 5, "over the limit of 5"},
		{"custom limit above default", long + "b", 1000, ""},
		{"multibyte over limit", "é", 1, "2 bytes"},
		{"leading slash", "/a", 0, "empty level"},
		{"trailing slash", "a/", 0, "empty level"},
		{"slash alone", "/", 0, "empty level"},
		{"double slash", "a//b", 0, "empty level"},
		{"plus", "a/+/c", 0, "wildcard"},
		{"hash", "a/#", 0, "wildcard"},
		{"plus inside level", "a+b", 0, "'+'"},
		{"hash inside level", "a#b", 0, "'#'"},
		{"hash alone", "#", 0, "not allowed in a publish topic"},
		{"invalid UTF-8", "a/\xff", 0, "UTF-8"},
		{"truncated UTF-8", "a/\xc3", 0, "UTF-8"},
		{"surrogate in UTF-8", "a/\xed\xa0\x80", 0, "UTF-8"},
		{"NUL", "a/\x00b", 0, "U+0000"},
		{"NUL alone", "\x00", 0, "U+0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := protocol.ValidateTopic(tt.topic, tt.max)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateTopic(%q, %d) = %v, want nil", tt.topic, tt.max, err)
				}
				return
			}
			checkTopicErr(t, "ValidateTopic("+tt.topic+")", err, tt.want)
		})
	}
}

func TestValidateFilter(t *testing.T) {
	long := strings.Repeat("a/", protocol.DefaultMaxTopicBytes/2) // 256 bytes, ends with '/'
	tests := []struct {
		name   string
		filter string
		max    int
		want   string
	}{
		{"plain", "a/b/c", 0, ""},
		{"plus", "a/+/c", 0, ""},
		{"plus alone", "+", 0, ""},
		{"plus first", "+/b", 0, ""},
		{"plus last", "a/+", 0, ""},
		{"plus everywhere", "+/+/+", 0, ""},
		{"hash alone", "#", 0, ""},
		{"hash last", "a/b/#", 0, ""},
		{"plus and hash", "+/#", 0, ""},
		{"dollar", "$SYS/#", 0, ""},
		{"dollar plus", "$SYS/+/x", 0, ""},
		{"unicode", "données/+/température", 0, ""},
		{"default limit exactly", strings.Repeat("x", 254) + "/#", 0, ""},
		{"custom limit exactly", "a/+/#", 5, ""},

		{"empty", "", 0, "empty"},
		{"over default limit", long + "#", 0, "257 bytes"},
		{"over custom limit", "a/+/#", 4, "over the limit of 4"},
		{"leading slash", "/a", 0, "empty level"},
		{"leading slash hash", "/#", 0, "empty level"},
		{"trailing slash", "a/", 0, "empty level"},
		{"trailing slash after plus", "+/", 0, "empty level"},
		{"double slash", "a//#", 0, "empty level"},
		{"plus in level", "a/b+/c", 0, "whole level"},
		{"plus prefix", "a/+b", 0, "whole level"},
		{"double plus", "++", 0, "whole level"},
		{"hash in level", "a/b#", 0, "whole level"},
		{"hash prefix", "#a", 0, "whole level"},
		{"plus hash level", "a/+#", 0, "whole level"},
		{"level number", "a/x+", 0, "level 2"},
		{"hash not last", "a/#/b", 0, "last level"},
		{"hash first", "#/b", 0, "last level"},
		{"hash twice", "#/#", 0, "last level"},
		{"invalid UTF-8", "+/\xfe", 0, "UTF-8"},
		{"NUL", "a/\x00", 0, "U+0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := protocol.ValidateFilter(tt.filter, tt.max)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ValidateFilter(%q, %d) = %v, want nil", tt.filter, tt.max, err)
				}
				return
			}
			checkTopicErr(t, "ValidateFilter("+tt.filter+")", err, tt.want)
		})
	}
}

// A valid publish topic is always a valid filter, and the reasons quote long
// topics shortened without breaking UTF-8.
func TestValidateReasonShortened(t *testing.T) {
	for _, topic := range []string{
		strings.Repeat("é", 100) + "/+",
		strings.Repeat("😀", 40) + "/#",
		strings.Repeat("a", 63) + "é/+",
		strings.Repeat("ab/", 40) + "x#",
	} {
		err := protocol.ValidateTopic(topic, 1000)
		checkTopicErr(t, "ValidateTopic", err, "wildcard")
		if !strings.Contains(err.Reason, "...") {
			t.Errorf("reason %q does not show the topic was shortened", err.Reason)
		}
		if strings.Contains(err.Reason, `\x`) {
			t.Errorf("reason %q splits a UTF-8 sequence", err.Reason)
		}
	}
	err := protocol.ValidateFilter(strings.Repeat("a/", 20)+strings.Repeat("é", 40)+"#", 1000)
	checkTopicErr(t, "ValidateFilter", err, "whole level")
	if strings.Contains(err.Reason, `\x`) {
		t.Errorf("reason %q splits a UTF-8 sequence", err.Reason)
	}
}

func TestIsSystem(t *testing.T) {
	for topic, want := range map[string]bool{
		"":         false,
		"$":        true,
		"$SYS/x":   true,
		"a/$SYS":   false,
		"+/x":      false,
		"#":        false,
		"$share/g": true,
	} {
		if got := protocol.IsSystem(topic); got != want {
			t.Errorf("IsSystem(%q) = %v, want %v", topic, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		// exact
		{"a", "a", true},
		{"a", "b", false},
		{"a/b/c", "a/b/c", true},
		{"a/b/c", "a/b/d", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a", "ab", false},
		{"ab", "a", false},
		{"a/b", "a/bc", false},
		{"telemetry/device-17/temp", "telemetry/device-17/temp", true},

		// '+'
		{"+", "a", true},
		{"+", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+/b", "a/b", true},
		{"+/b", "a/c", false},
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a/x/d", false},
		{"a/+/c", "a/c", false},
		{"+/+", "a/b", true},
		{"+/+", "a", false},
		{"+/+/+", "a/b/c", true},
		{"a/+/+", "a/b", false},

		// '#'
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b", true},
		{"a/#", "a/b/c/d", true},
		{"a/#", "b", false},
		{"a/#", "b/a", false},
		{"a/#", "ab", false},
		{"a/b/#", "a", false},
		{"a/b/#", "a/b", true},
		{"a/b/#", "a/c/d", false},
		{"+/#", "a", true},
		{"+/#", "a/b/c", true},
		{"a/+/#", "a", false},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a/b/c/d", true},
		{"+/b/#", "a/b", true},
		{"+/b/#", "a/c", false},

		// '$' topics
		{"#", "$SYS/x", false},
		{"#", "$SYS", false},
		{"+", "$SYS", false},
		{"+/x", "$SYS/x", false},
		{"+/#", "$SYS/x", false},
		{"+/+", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/#", "$SYS/a/b", true},
		{"$SYS/+", "$SYS/x", true},
		{"$SYS/+/y", "$SYS/x/y", true},
		{"$SYS/x", "$SYS/x", true},
		{"$SYS/#", "$OTHER/x", false},
		{"$SYS/#", "SYS/x", false},
		{"a/#", "a/$SYS", true},
		{"a/+", "a/$x", true},
		{"+/$x", "a/$x", true},
		{"$", "$", true},

		// multi-level
		{"a/b/c/d/e", "a/b/c/d/e", true},
		{"a/+/c/+/e", "a/b/c/d/e", true},
		{"a/+/c/+/e", "a/b/c/d/f", false},
		{"+/+/+/+/#", "a/b/c/d", true},
		{"+/+/+/+/#", "a/b/c", false},
		{"+/+/+/+/+", "a/b/c/d/e", true},
		{"+/+/+/+/+", "a/b/c/d/e/f", false},

		// unicode
		{"données/+/température", "données/capteur-1/température", true},
		{"données/+", "données/😀", true},
		{"😀/#", "😀/a/b", true},
		{"é", "e", false},
		{"+/é", "x/é", true},
		{"日本/+", "日本/東京", true},
		{"日本/+", "日本/東京/渋谷", false},
	}
	for _, tt := range tests {
		if got := protocol.Match(tt.filter, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
		// the table only holds valid filters and topics
		if err := protocol.ValidateFilter(tt.filter, 0); err != nil {
			t.Errorf("test filter %q: %v", tt.filter, err)
		}
		if err := protocol.ValidateTopic(tt.topic, 0); err != nil {
			t.Errorf("test topic %q: %v", tt.topic, err)
		}
	}
}

// TestMatchReference compares Match with a simple reference implementation
// over all small filters and topics built from a few levels.
func TestMatchReference(t *testing.T) {
	topicLevels := []string{"a", "b", "$s"}
	filterLevels := []string{"a", "b", "$s", "+", "#"}
	var topics, filters []string
	var build func(levels []string, prefix []string, max int, out *[]string)
	build = func(levels []string, prefix []string, max int, out *[]string) {
		if len(prefix) > 0 {
			*out = append(*out, strings.Join(prefix, "/"))
		}
		if len(prefix) == max {
			return
		}
		for _, l := range levels {
			build(levels, append(prefix[:len(prefix):len(prefix)], l), max, out)
		}
	}
	build(topicLevels, nil, 4, &topics)
	build(filterLevels, nil, 4, &filters)
	n := 0
	for _, f := range filters {
		if protocol.ValidateFilter(f, 0) != nil {
			continue
		}
		for _, topic := range topics {
			if protocol.ValidateTopic(topic, 0) != nil {
				continue
			}
			n++
			if got, want := protocol.Match(f, topic), refMatch(f, topic); got != want {
				t.Errorf("Match(%q, %q) = %v, want %v", f, topic, got, want)
			}
		}
	}
	if n < 10000 {
		t.Fatalf("only %d pairs checked", n)
	}
}

// refMatch is the MQTT matching rule, written as plainly as possible.
func refMatch(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	if strings.HasPrefix(topic, "$") && (fl[0] == "+" || fl[0] == "#") {
		return false
	}
	for i, f := range fl {
		if f == "#" {
			return true // zero or more levels
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}
