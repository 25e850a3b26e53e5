// Package vet is a fixture that compiles but has vet findings.
package vet

import "fmt"

// Greet formats wrongly on purpose.
func Greet(name string) string {
	return fmt.Sprintf("hello %d", name)
}

// Count formats an int as a string on purpose: a second printf finding.
func Count(n int) string {
	return fmt.Sprintf("%s", n)
}
