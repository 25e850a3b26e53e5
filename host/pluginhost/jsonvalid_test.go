package pluginhost

import (
	"encoding/json"
	"strings"
	"testing"
)

var jsonCases = []string{
	``, ` `, `null`, `true`, `false`, `nul`, `truex`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `-12.5e10`,
	`""`, `"a"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE80"`, `"\u00g0"`, `"\u12"`, `"\x"`, "\"a\x01b\"", "\"\xff\xfe\"", `"unterminated`,
	`[]`, `[ ]`, `[1,2]`, `[1,]`, `[,1]`, `[1 2]`, `{}`, `{ }`, `{"a":1}`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1 "b":2}`,
	`{"a":[{"b":{"c":[null,true,"}"]}}]}`, ` {"a" : [ 1 , 2 ] } `, "\t\r\n[1]\n", `[1]]`, `[[1]`, `{"a":1}}`, `1 2`, `[]{}`,
	`{"data":"` + strings.Repeat("x", 5000) + `"}`,
}

// TestValidJSONIsJSONValid checks validJSON against json.Valid, the
// definition it must keep.
func TestValidJSONIsJSONValid(t *testing.T) {
	for _, c := range jsonCases {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%.40q) = %v; json.Valid says %v", c, got, want)
		}
	}
	for _, depth := range []int{maxJSONDepth - 1, maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"k":`} {
			closing := "]"
			if open != "[" {
				closing = "}"
			}
			c := []byte(strings.Repeat(open, depth) + "1" + strings.Repeat(closing, depth))
			if got, want := validJSON(c), json.Valid(c); got != want {
				t.Errorf("%d levels of %s: validJSON = %v; json.Valid says %v", depth, open, got, want)
			}
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v; json.Valid says %v", data, got, want)
		}
	})
}

// BenchmarkValidJSON checks a 1 MiB result value as a command's stdout
// makes one: mostly one long string.
func BenchmarkValidJSON(b *testing.B) {
	data := []byte(`{"exit_code":0,"stdout":"` + strings.Repeat("ok  \\tgithub.com/x/y\\t0.012s\\n", 1<<15) + `","stderr_tail":""}`)
	for _, impl := range []struct {
		name  string
		valid func([]byte) bool
	}{{"validJSON", validJSON}, {"json.Valid", json.Valid}} {
		b.Run(impl.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if !impl.valid(data) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
