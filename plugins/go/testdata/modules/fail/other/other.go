// Package other passes, next to a failing package.
package other

// Two returns 2.
func Two() int { return 2 }
