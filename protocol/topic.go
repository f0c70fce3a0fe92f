package protocol

import (
	"strings"
	"unicode/utf8"
)

// Topic rules. A topic is one or more levels separated by '/'; every level is
// non-empty. Topics are valid UTF-8 without U+0000. A published topic has no
// '+' or '#' anywhere. In a filter, '+' and '#' each stand alone in their
// level and '#' is the last level. Topics starting with '$' belong to the
// broker.

// ValidateTopic checks a topic used to publish. maxBytes <= 0 means
// DefaultMaxTopicBytes.
func ValidateTopic(topic string, maxBytes int) *Error {
	if err := validateCommon(topic, maxBytes); err != nil {
		return err
	}
	if i := strings.IndexAny(topic, "+#"); i >= 0 {
		return Errorf(CodeBadTopic, "topic %q: wildcard %q is not allowed in a publish topic", truncate(topic, 64), topic[i])
	}
	return nil
}

// ValidateFilter checks a subscription filter.
func ValidateFilter(filter string, maxBytes int) *Error {
	if err := validateCommon(filter, maxBytes); err != nil {
		return err
	}
	for level, rest := 0, filter; ; level++ {
		seg, tail, more := strings.Cut(rest, "/")
		if strings.ContainsAny(seg, "+#") && len(seg) > 1 {
			return Errorf(CodeBadTopic, "filter %q: wildcard must fill a whole level (level %d is %q)", truncate(filter, 64), level+1, truncate(seg, 32))
		}
		if seg == "#" && more {
			return Errorf(CodeBadTopic, "filter %q: '#' must be the last level", truncate(filter, 64))
		}
		if !more {
			return nil
		}
		rest = tail
	}
}

func validateCommon(topic string, maxBytes int) *Error {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxTopicBytes
	}
	switch {
	case topic == "":
		return Errorf(CodeBadTopic, "topic is empty")
	case len(topic) > maxBytes:
		return Errorf(CodeBadTopic, "topic is %d bytes, over the limit of %d", len(topic), maxBytes)
	case !utf8.ValidString(topic):
		return Errorf(CodeBadTopic, "topic %q is not valid UTF-8", truncate(topic, 64))
	case strings.IndexByte(topic, 0) >= 0:
		return Errorf(CodeBadTopic, "topic %q contains U+0000", truncate(topic, 64))
	case topic[0] == '/' || topic[len(topic)-1] == '/' || strings.Contains(topic, "//"):
		return Errorf(CodeBadTopic, "topic %q has an empty level", truncate(topic, 64))
	}
	return nil
}

// IsSystem reports whether a topic or filter belongs to the broker (starts
// with '$').
func IsSystem(topic string) bool { return len(topic) > 0 && topic[0] == '$' }

// Match reports whether a valid filter matches a valid topic. A filter whose
// first level is a wildcard does not match a topic starting with '$'.
func Match(filter, topic string) bool {
	if IsSystem(topic) && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fseg, frest, fmore := strings.Cut(filter, "/")
		if fseg == "#" {
			return true
		}
		tseg, trest, tmore := strings.Cut(topic, "/")
		if fseg != "+" && fseg != tseg {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a": '#' covers zero levels
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
