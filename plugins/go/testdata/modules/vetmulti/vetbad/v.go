// Package vetbad has a vet finding and no "# package" header before it.
package vetbad

import "fmt"

func F() string { return fmt.Sprintf("%d", "x") }
