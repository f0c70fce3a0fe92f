package perm

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// UnmarshalJSON accepts the two forms of the contract: a list of allowed
// filters, ["a/#"], or an object {"allow": [...], "deny": [...]} whose keys
// are both optional and appear once each. null, for the whole or for a key,
// is no filters. Anything else is an error matching ErrInvalidRules: a
// misspelt key, denying nothing, must not pass unnoticed.
func (l *Lists) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch kind(b) {
	case "null":
		*l = Lists{}
		return nil
	case "a list":
		allow, err := filters(b)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrInvalidRules, err)
		}
		*l = Lists{Allow: allow}
		return nil
	case "an object":
		return l.unmarshalObject(b)
	}
	return listsError(kind(b))
}

func listsError(got string) error {
	return fmt.Errorf(`%w: permissions must be a list of filters or {"allow": [...], "deny": [...]}, not %s`, ErrInvalidRules, got)
}

// kind names the JSON value b (without surrounding space).
func kind(b []byte) string {
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		if string(b) == "null" {
			return "null"
		}
		return "not JSON"
	case '{':
		return "an object"
	case '[':
		return "a list"
	}
	return "a number"
}

func (l *Lists) unmarshalObject(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // '{'
		return fmt.Errorf("%w: %s", ErrInvalidRules, err)
	}
	var out Lists
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %s", ErrInvalidRules, err)
		}
		key, _ := tok.(string) // an object's keys are strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: %s", ErrInvalidRules, err)
		}
		if key != "allow" && key != "deny" {
			return fmt.Errorf(`%w: unknown key %q in permissions; there are "allow" and "deny"`, ErrInvalidRules, truncate(key, 32))
		}
		if seen[key] {
			return fmt.Errorf("%w: %q appears twice in permissions", ErrInvalidRules, key)
		}
		seen[key] = true
		f, err := filters(raw)
		if err != nil {
			return fmt.Errorf("%w: %q: %s", ErrInvalidRules, key, err)
		}
		if key == "allow" {
			out.Allow = f
		} else {
			out.Deny = f
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return fmt.Errorf("%w: %s", ErrInvalidRules, err)
	}
	*l = out
	return nil
}

// filters decodes a JSON list of strings (or null).
func filters(b []byte) ([]string, error) {
	switch k := kind(bytes.TrimSpace(b)); k {
	case "null":
		return nil, nil
	case "a list":
	default:
		return nil, fmt.Errorf("want a list of filters, not %s", k)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, err
	}
	out := make([]string, len(raw))
	for i, r := range raw {
		if k := kind(r); k != "a string" {
			return nil, fmt.Errorf("filter %d is %s, not a string", i, k)
		}
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
