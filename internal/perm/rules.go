package perm

// Rules is what a token's "ferry" claim, a static token or an ACL entry
// grants: the filters a connection may publish to (Pub) and subscribe to
// (Sub).
type Rules struct {
	Pub Lists `json:"pub"`
	Sub Lists `json:"sub"`
}

// Lists holds allowed and denied filters, each possibly a template (see
// Compile). A topic is permitted when an allowed filter matches it and no
// denied one does; zero Lists permit nothing.
//
// In JSON a Lists is either a list of allowed filters, ["a/#", "b/+"], or an
// object {"allow": [...], "deny": [...]} (see UnmarshalJSON).
type Lists struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// Identity is who the rules are compiled for: it fills the templates.
type Identity struct {
	// Subject fills {sub}: the token's "sub".
	Subject string
	// Claims fill {claim:NAME}: the token's claims by name. Only string
	// values fill a placeholder; nil means no claims.
	Claims map[string]any
}
