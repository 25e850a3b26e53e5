// Package buildfail is a fixture that does not compile.
package buildfail

// Broken returns a string where an int is declared.
func Broken() int { return "not an int" }
