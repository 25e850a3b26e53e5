// Package fail is a fixture with a failing test.
package fail

// Mul returns a*b, wrongly.
func Mul(a, b int) int { return a + b }
