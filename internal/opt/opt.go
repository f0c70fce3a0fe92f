// Package opt holds helpers for options structs whose zero values mean
// defaults.
package opt

// Default sets *v to d when *v is the zero value.
func Default[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
