package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Result types for TestResultSchema, each exercising a rule of
// encoding/json.

type rsFile struct {
	Path string `json:"path"`
	Size int64  `json:"size,omitempty"`
}

type rsEmbedded struct {
	Shared string `json:"shared"`
	Plain  int
}

type rsBehindPointer struct {
	Maybe string `json:"maybe"`
}

type rsLower struct {
	Promoted bool `json:"promoted"`
}

// rsText writes itself as a string (value receiver).
type rsText struct{ n int }

func (t rsText) MarshalText() ([]byte, error) { return []byte(fmt.Sprint(t.n)), nil }

// rsOwnJSON writes whatever it likes (value receiver).
type rsOwnJSON struct{ n int }

func (rsOwnJSON) MarshalJSON() ([]byte, error) { return []byte(`[1,"two"]`), nil }

// rsPointerJSON has MarshalJSON on its pointer: used only where the value
// is addressable.
type rsPointerJSON struct{ N int }

func (*rsPointerJSON) MarshalJSON() ([]byte, error) { return []byte(`"custom"`), nil }

type rsTree struct {
	Name     string   `json:"name"`
	Children []rsTree `json:"children"`
}

type rsClashA struct{ Clash string }
type rsClashB struct{ Clash string }

type rsAll struct {
	rsEmbedded
	*rsBehindPointer
	rsLower
	rsClashA // Clash, twice at one depth: encoding/json drops both
	rsClashB
	S               string            `json:"s"`
	Renamed         int               `json:"n"`
	Untagged        bool              // named after the field
	Skipped         string            `json:"-"`
	Dash            string            `json:"-,"` // named "-"
	hidden          string            // unexported: never encoded
	Opt             string            `json:"opt,omitempty"`
	Zero            rsFile            `json:"zero,omitzero"`
	StructOmitEmpty rsFile            `json:"soe,omitempty"` // a struct is never empty
	Quoted          int               `json:"q,string"`
	QuotedOwn       rsOwnJSON         `json:"qo,string"` // its MarshalJSON ignores ,string
	Ptr             *rsFile           `json:"ptr"`
	List            []rsFile          `json:"list"`
	Array           [2]byte           `json:"array"` // numbers, not base64
	Bytes           []byte            `json:"bytes"` // base64
	Map             map[string]int    `json:"map"`
	IntKeys         map[int]string    `json:"int_keys"`
	Time            time.Time         `json:"time"`
	TimePtr         *time.Time        `json:"time_ptr"`
	Duration        time.Duration     `json:"duration"`
	Raw             json.RawMessage   `json:"raw"`
	Any             any               `json:"any"`
	Error           error             `json:"error"`
	Number          json.Number       `json:"number"`
	Text            rsText            `json:"text"`
	IP              net.IP            `json:"ip"` // a TextMarshaler
	Own             rsOwnJSON         `json:"own"`
	PointerJSON     rsPointerJSON     `json:"pointer_json"`
	Tree            rsTree            `json:"tree"`
	BadTag          string            `json:"a\"b"` // not a valid name: the field's
	Shared          string            `json:"top"`  // not the embedded "shared"
	Nested          map[string][]bool `json:"nested"`
}

func TestResultSchema(t *testing.T) {
	file := `["object",{"path":"string","size":"number"},["size"]]`
	tests := []struct {
		name string
		typ  reflect.Type
		want string
	}{
		{"string", reflect.TypeFor[string](), `"string"`},
		{"int", reflect.TypeFor[int](), `"number"`},
		{"any", reflect.TypeFor[any](), `"dynamic"`},
		{"raw JSON", reflect.TypeFor[json.RawMessage](), `"dynamic"`},
		{"pointer", reflect.TypeFor[*rsFile](), file},
		{"list", reflect.TypeFor[[]string](), `["list","string"]`},
		{"map of any", reflect.TypeFor[map[string]any](), `["map","dynamic"]`},
		{"struct", reflect.TypeFor[rsFile](), file},
		{"empty struct", reflect.TypeFor[struct{}](), `["object",{}]`},
		{"own JSON at the top", reflect.TypeFor[rsOwnJSON](), `"dynamic"`},
		{"text at the top", reflect.TypeFor[rsText](), `"string"`},
		{"time", reflect.TypeFor[time.Time](), `"string"`},
		{"recursive", reflect.TypeFor[rsTree](), `["object",{"children":["list","dynamic"],"name":"string"}]`},
		{"every rule", reflect.TypeFor[rsAll](), `["object",{` +
			`"-":"string","Plain":"number","Untagged":"bool",` +
			`"BadTag":"string",` +
			`"any":"dynamic","array":["list","number"],"bytes":"string","duration":"number","error":"dynamic",` +
			`"int_keys":["map","string"],"ip":"string","list":["list",` + file + `],"map":["map","number"],` +
			`"maybe":"string","n":"number","nested":["map",["list","bool"]],"number":"number",` +
			`"opt":"string","own":"dynamic","pointer_json":"dynamic","promoted":"bool","ptr":` + file + `,` +
			`"q":"string","qo":"dynamic","raw":"dynamic","s":"string","shared":"string","soe":` + file + `,` +
			`"text":"string","time":"string","time_ptr":"string","top":"string",` +
			`"tree":["object",{"children":["list","dynamic"],"name":"string"}],` +
			`"zero":` + file + `},["maybe","opt","zero"]]`},
		// What encoding/json cannot encode has no schema.
		{"channel", reflect.TypeFor[chan int](), ``},
		{"func field", reflect.TypeFor[struct{ F func() }](), ``},
		{"complex", reflect.TypeFor[struct{ C complex128 }](), ``},
		{"struct keys", reflect.TypeFor[map[rsFile]int](), ``},
		// ... unless it is left out.
		{"func field left out", reflect.TypeFor[struct {
			F func() `json:"-"`
			N int    `json:"n"`
		}](), `["object",{"n":"number"}]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := resultSchema(tc.typ)
			want := tc.want
			if tc.name == "every rule" {
				want = canonicalType(t, want)
			}
			if got != want {
				t.Errorf("resultSchema(%s) =\n%s\nwant\n%s", tc.typ, got, want)
			}
			if got == "" {
				return
			}
			var ty cty.Type
			if err := ty.UnmarshalJSON([]byte(got)); err != nil {
				t.Errorf("%s is not a cty JSON type: %v", got, err)
			}
		})
	}
}

// canonicalType is the JSON type want re-encoded with sorted keys, as
// resultSchema writes it.
func canonicalType(t *testing.T, want string) string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(want), &v); err != nil {
		t.Fatalf("the test's own type %s: %v", want, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResultSchemaMatchesEncodingJSON encodes values with encoding/json
// and checks each against the schema derived from its type: an object
// key the schema lacks is what would make the host refuse a valid
// reference, a required key the value lacks an optional mark missing.
func TestResultSchemaMatchesEncodingJSON(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	full := rsAll{
		rsEmbedded:      rsEmbedded{Shared: "s", Plain: 1},
		rsBehindPointer: &rsBehindPointer{Maybe: "m"},
		rsLower:         rsLower{Promoted: true},
		rsClashA:        rsClashA{Clash: "a"},
		rsClashB:        rsClashB{Clash: "b"},
		S:               "s", Renamed: 2, Untagged: true, Skipped: "x", Dash: "d", hidden: "h",
		Opt: "o", Zero: rsFile{Path: "z", Size: 1}, StructOmitEmpty: rsFile{Path: "e"}, Quoted: 3,
		Ptr: &rsFile{Path: "p", Size: 4}, List: []rsFile{{Path: "l"}}, Array: [2]byte{1, 2}, Bytes: []byte("b"),
		Map: map[string]int{"k": 1}, IntKeys: map[int]string{1: "one"}, Time: when, TimePtr: &when,
		Duration: time.Second, Raw: json.RawMessage(`{"free":[1]}`), Any: map[string]any{"x": 1}, Error: nil,
		Number: "12.5", Text: rsText{7}, IP: net.IPv4(10, 0, 0, 1), Tree: rsTree{Name: "root", Children: []rsTree{{Name: "leaf", Children: []rsTree{{Name: "deeper"}}}}},
		BadTag: "b", Shared: "top", Nested: map[string][]bool{"a": {true}},
	}
	values := []any{full, &full, rsAll{}, []rsFile{{Path: "a"}, {Path: "b", Size: 2}}, map[string]any{"k": []any{1, "x"}}, rsTree{Name: "r"}}
	for _, v := range values {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("encode %T: %v", v, err)
		}
		schema := resultSchema(reflect.TypeOf(v))
		var ty cty.Type
		if err := ty.UnmarshalJSON([]byte(schema)); err != nil {
			t.Fatalf("%T: schema %q: %v", v, schema, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var decoded any
		if err := dec.Decode(&decoded); err != nil {
			t.Fatal(err)
		}
		if err := matches(ty, decoded, "value"); err != nil {
			t.Errorf("%T: %v\nvalue: %s\nschema: %s", v, err, data, schema)
		}
	}
}

// matches checks a decoded JSON value against a result type; null is
// anything.
func matches(ty cty.Type, v any, path string) error {
	if v == nil || ty == cty.DynamicPseudoType {
		return nil
	}
	bad := func() error { return fmt.Errorf("%s is %T, the schema says %s", path, v, ty.FriendlyName()) }
	switch {
	case ty == cty.String:
		if _, ok := v.(string); !ok {
			return bad()
		}
	case ty == cty.Number:
		if _, ok := v.(json.Number); !ok {
			return bad()
		}
	case ty == cty.Bool:
		if _, ok := v.(bool); !ok {
			return bad()
		}
	case ty.IsListType():
		items, ok := v.([]any)
		if !ok {
			return bad()
		}
		for i, item := range items {
			if err := matches(ty.ElementType(), item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case ty.IsMapType():
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for k, item := range obj {
			if err := matches(ty.ElementType(), item, path+"."+k); err != nil {
				return err
			}
		}
	case ty.IsObjectType():
		obj, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if !ty.HasAttribute(k) {
				return fmt.Errorf("%s has %q, which the schema lacks", path, k)
			}
			if err := matches(ty.AttributeType(k), obj[k], path+"."+k); err != nil {
				return err
			}
		}
		for k := range ty.AttributeTypes() {
			if _, ok := obj[k]; !ok && !ty.AttributeOptional(k) {
				return fmt.Errorf("%s lacks %q, which the schema does not mark optional", path, k)
			}
		}
	default:
		return bad()
	}
	return nil
}

// TestDescribeSendsResultSchema: the schema reaches Describe.
func TestDescribeSendsResultSchema(t *testing.T) {
	k := NewKind("k", "t.k/v1", func(context.Context, *Module, struct{}) (rsFile, error) { return rsFile{}, nil })
	if got, want := k.def().describe().GetResultSchema(), `["object",{"path":"string","size":"number"},["size"]]`; got != want {
		t.Errorf("result_schema = %s, want %s", got, want)
	}
}
