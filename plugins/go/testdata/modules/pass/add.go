// Package pass is a fixture whose tests all pass.
package pass

// Add returns a+b.
func Add(a, b int) int { return a + b }
