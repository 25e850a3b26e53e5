package sdk

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSnakeCase(t *testing.T) {
	tests := map[string]string{
		"Dir":        "dir",
		"StdoutJSON": "stdout_json",
		"HTTPServer": "http_server",
		"RunID":      "run_id",
		"Packages":   "packages",
		"A":          "a",
		"ExitCode":   "exit_code",
	}
	for in, want := range tests {
		if got := snakeCase(in); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}

type inner struct {
	Name string `modpipe:"name"`
	Deep bool   `modpipe:"deep,optional"`
}

type allTypes struct {
	S        string                 `modpipe:"s" doc:"a string"`
	B        bool                   `modpipe:"b,optional"`
	I        int64                  `modpipe:"i,optional"`
	U        uint8                  `modpipe:"u,optional"`
	F        float32                `modpipe:"f,optional"`
	D        time.Duration          `modpipe:"d,optional"`
	L        []string               `modpipe:"l,optional"`
	M        map[string]int         `modpipe:"m,optional"`
	O        inner                  `modpipe:"o,optional"`
	P        *inner                 `modpipe:"p,optional"`
	LO       []inner                `modpipe:"lo,optional"`
	A        any                    `modpipe:"a,optional"`
	R        json.RawMessage        `modpipe:"r,optional"`
	MM       map[string][]float64   `modpipe:"mm,optional"`
	Untagged string                 `modpipe:",optional"`
	Skipped  string                 `modpipe:"-"`
	hidden   string                 // unexported: not an attribute
	Nested   map[string]interface{} `modpipe:"nested,optional"`
}

func TestAttributes(t *testing.T) {
	attrs, err := attributes(reflect.TypeFor[allTypes]())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`s "string" required doc="a string"`,
		`b "bool"`,
		`i "number"`,
		`u "number"`,
		`f "number"`,
		`d "string"`,
		`l ["list","string"]`,
		`m ["map","number"]`,
		`o ["object",{"deep":"bool","name":"string"},["deep"]]`,
		`p ["object",{"deep":"bool","name":"string"},["deep"]]`,
		`lo ["list",["object",{"deep":"bool","name":"string"},["deep"]]]`,
		`a "dynamic"`,
		`r "dynamic"`,
		`mm ["map",["list","number"]]`,
		`untagged "string"`,
		`nested ["map","dynamic"]`,
	}
	var got []string
	for _, a := range attrs {
		s := a.Name + " " + a.Type
		if a.Required {
			s += " required"
		}
		if a.Doc != "" {
			s += fmt.Sprintf(" doc=%q", a.Doc)
		}
		got = append(got, s)
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("attributes:\n got %q\nwant %q", got, want)
	}
}

type treeNode struct {
	Name     string     `modpipe:"name"`
	Children []treeNode `modpipe:"children,optional"`
}

type evenNode struct{ Next *oddNode }
type oddNode struct{ Next map[string]evenNode }

type selfConfig struct{ Parts []selfConfig }

func TestAttributesRefusesUnsupported(t *testing.T) {
	tests := []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"not a struct", reflect.TypeFor[string](), "config type string is not a struct"},
		{"chan", reflect.TypeFor[struct {
			C chan int `modpipe:"c"`
		}](), `field C (attribute "c"): type chan int is not supported`},
		{"int keys", reflect.TypeFor[struct {
			M map[int]string `modpipe:"m"`
		}](), "map keys must be strings"},
		{"duplicate", reflect.TypeFor[struct {
			A string `modpipe:"x"`
			B string `modpipe:"x"`
		}](), `fields A and B both map to attribute "x"`},
		{"bad flag", reflect.TypeFor[struct {
			A string `modpipe:"a,optinal"`
		}](), `unknown modpipe tag option "optinal"`},
		{"interface with methods", reflect.TypeFor[struct {
			E error `modpipe:"e"`
		}](), "use any or json.RawMessage"},
		// A struct that contains itself overflowed the stack when the
		// plugin started, which the host saw as a failed handshake.
		{"contains itself", reflect.TypeFor[struct {
			Root treeNode `modpipe:"root"`
		}](), "type sdk.treeNode contains itself (sdk.treeNode -> sdk.treeNode)"},
		{"contains itself through another", reflect.TypeFor[struct {
			Top evenNode `modpipe:"top"`
		}](), "type sdk.evenNode contains itself (sdk.evenNode -> sdk.oddNode -> sdk.evenNode)"},
		{"the config itself", reflect.TypeFor[selfConfig](), "type sdk.selfConfig contains itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := attributes(tt.typ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	k := NewKind("all", "t/v1", func(_ contextT, _ *Module, c allTypes) (allTypes, error) { return c, nil }).def()
	tests := []struct {
		name, config string
		want         allTypes
		errs         []string // "path: summary: detail"
	}{
		{name: "minimal", config: `{"s":"x"}`, want: allTypes{S: "x"}},
		{name: "null config is empty", config: `null`, errs: []string{`s: Missing required attribute: The attribute "s" is required, but no value was given.`}},
		{name: "everything", config: `{"s":"x","b":true,"i":-5,"u":255,"f":1.5,"d":"1m","l":["a"],"m":{"k":1},"o":{"name":"o"},"p":{"name":"p","deep":true},"lo":[{"name":"l"}],"a":[1,"two"],"r":{"raw":1},"mm":{"k":[1.5]},"untagged":"u","nested":{"x":null}}`,
			want: allTypes{S: "x", B: true, I: -5, U: 255, F: 1.5, D: time.Minute, L: []string{"a"}, M: map[string]int{"k": 1}, O: inner{Name: "o"}, P: &inner{Name: "p", Deep: true},
				LO: []inner{{Name: "l"}}, A: []any{1.0, "two"}, R: json.RawMessage(`{"raw":1}`), MM: map[string][]float64{"k": {1.5}}, Untagged: "u", Nested: map[string]any{"x": nil}}},
		{name: "out of range", config: `{"s":"x","u":256}`, errs: []string{`u: Incorrect attribute value type: attribute "u" must be a whole number in range for uint8, got 256`}},
		{name: "nested errors", config: `{"s":"x","o":{"nmae":"o"},"m":{"b":"x","a":1}}`, errs: []string{
			`m["b"]: Incorrect attribute value type: attribute "m[\"b\"]" must be a whole number in range for int, got "x"`,
			`o.nmae: Unsupported attribute: An attribute named "nmae" is not expected here. Did you mean "name"?`,
			`o.name: Missing required attribute: The attribute "o.name" is required, but no value was given.`,
		}},
		{name: "null elements", config: `{"s":"x","l":["a",null],"m":{"k":null},"a":[null]}`, errs: []string{
			`l[1]: Null element: attribute "l[1]" is null; a list's elements must have values`,
			`m["k"]: Null element: attribute "m[\"k\"]" is null; a map's values must have values`,
		}},
		{name: "not an object", config: `[1]`, errs: []string{`: Incorrect attribute value type: the configuration must be an object, got [1]`}},
		{name: "far from anything", config: `{"s":"x","zzzzzz":1}`, errs: []string{`zzzzzz: Unsupported attribute: An attribute named "zzzzzz" is not expected here.`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, errs := k.decodeConfig(tt.config)
			var gotErrs []string
			for _, e := range errs {
				gotErrs = append(gotErrs, e.path+": "+e.summary+": "+e.detail)
			}
			if fmt.Sprintf("%q", gotErrs) != fmt.Sprintf("%q", tt.errs) {
				t.Fatalf("errors:\n got %q\nwant %q", gotErrs, tt.errs)
			}
			if tt.errs == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decoded:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "abc", 0}, {"cuont", "count", 2}, {"", "ab", 2}, {"kitten", "sitting", 3}}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// FuzzPlainJSONString: whatever plainJSONString accepts, encoding/json
// decodes to the same string.
func FuzzPlainJSONString(f *testing.F) {
	for _, s := range []string{`"/bin/true"`, `""`, ` "a b" `, `"\u00e9"`, `"tab	in"`, `"é"`, "\"\xff\"", `"a\"b"`, `"a"b"`, `'x'`, `"`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainJSONString(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("plainJSONString(%q) = %q, but encoding/json refuses it: %v", raw, got, err)
		}
		if got != want {
			t.Fatalf("plainJSONString(%q) = %q, encoding/json gives %q", raw, got, want)
		}
	})
}
