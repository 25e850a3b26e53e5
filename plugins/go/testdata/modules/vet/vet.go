// Package vet is a fixture that compiles but has vet findings.
package vet

import "fmt"

// Greet formats wrongly on purpose.
func Greet(name string) string {
	return fmt.Sprintf("hello %d", name)
}

// Copy copies a value holding a lock... kept simple: a second printf finding.
func Copy(n int) string {
	return fmt.Sprintf("%s", n)
}
