// Package broken does not type-check: vet prints a "# package" header
// for it, which the finding in vetbad must not take.
package broken

func G() int { return "not an int" }
