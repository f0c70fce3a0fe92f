// Package perm decides what a connection may publish and subscribe to, as
// docs/security.md and the security contract describe: it compiles the
// permissions of a token, a static token or an ACL entry (Rules) for one
// identity into a Set, which answers CanPublish and CanSubscribe without
// allocating. It does no I/O.
//
// The rules, in short:
//
//   - pub is checked against the Pub lists; sub and unsub against the Sub
//     lists.
//   - A topic is permitted when an allowed filter matches it and no denied
//     filter does: deny beats allow, and nothing matching means denied.
//     Matching is protocol.Match's, so a '+' or '#' at the first level does
//     not match a topic starting with '$': such topics need a rule naming
//     them ("$SYS/#"), and "#" neither allows nor denies them.
//   - A filter may be subscribed to only when every topic it can match is
//     permitted: it is a subset of one allowed filter and overlaps no denied
//     one. "telemetry/+/temp" is refused when only "telemetry/dev-1/#" is
//     allowed; "a/#" is refused when "a/#" is allowed and "a/b" denied.
//   - Templates ({sub}, {claim:NAME}) are filled at Compile. A value that
//     could widen a rule ("+", "a/b", "$SYS", "") drops an allowed rule and
//     widens a denied one (see Compile).
//
// A Set is immutable: any number of goroutines may use one at once. Compile
// again to change permissions (a refreshed token, a reloaded ACL).
package perm
