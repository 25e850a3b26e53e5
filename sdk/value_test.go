package sdk

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// A result value keeps <, > and & as they are (escaped as \u003c they
// would count six times against a fleet's result size) and decodes to
// the same value as json.Marshal's.
func TestMarshalValueNotHTMLEscaped(t *testing.T) {
	for _, v := range []any{"<&>", map[string]any{"a<b": []string{"x&y"}}} {
		b, err := marshalValue(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), `\u00`) || strings.HasSuffix(string(b), "\n") {
			t.Fatalf("marshalValue(%v) = %q", v, b)
		}
		old, _ := json.Marshal(v)
		var got, want any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(old, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s decodes to %v, want %v", b, got, want)
		}
	}
}
