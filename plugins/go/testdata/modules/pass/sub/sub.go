// Package sub has no tests.
package sub

// Sub returns a-b.
func Sub(a, b int) int { return a - b }
