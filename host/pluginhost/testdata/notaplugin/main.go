// Command notaplugin is an ordinary program, not a plugin: the host must
// refuse it with a handshake error.
package main

import "fmt"

func main() {
	fmt.Println("hello, I am just a program")
}
