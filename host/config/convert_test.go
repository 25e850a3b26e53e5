package config

import (
	"fmt"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// TestConvertValueIsConvert checks convertValue against convert.Convert:
// the same value, or an error where it errs, with the same message.
func TestConvertValueIsConvert(t *testing.T) {
	strs := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b"), cty.StringVal("a")})
	mixed := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(2), cty.True})
	withNull := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NullVal(cty.String)})
	withUnknown := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.UnknownVal(cty.String), cty.DynamicVal})
	bad := cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.ListValEmpty(cty.String)})
	notNumber := cty.TupleVal([]cty.Value{cty.NumberIntVal(1), cty.StringVal("x")})
	tests := []struct {
		name string
		v    cty.Value
		ty   cty.Type
	}{
		{"strings to list", strs, cty.List(cty.String)},
		{"strings to set (duplicates merge)", strs, cty.Set(cty.String)},
		{"mixed to list of strings", mixed, cty.List(cty.String)},
		{"mixed to set of strings", mixed, cty.Set(cty.String)},
		{"number strings to list of numbers", cty.TupleVal([]cty.Value{cty.StringVal("1"), cty.NumberIntVal(2)}), cty.List(cty.Number)},
		{"not a number", notNumber, cty.List(cty.Number)},
		{"bools to list of bools", cty.TupleVal([]cty.Value{cty.StringVal("true"), cty.False}), cty.List(cty.Bool)},
		{"a null element", withNull, cty.List(cty.String)},
		{"unknown elements", withUnknown, cty.List(cty.String)},
		{"an element that does not convert", bad, cty.List(cty.String)},
		{"empty tuple", cty.EmptyTupleVal, cty.List(cty.String)},
		{"null tuple", cty.NullVal(cty.EmptyTuple), cty.List(cty.String)},
		{"unknown tuple", cty.UnknownVal(cty.Tuple([]cty.Type{cty.String})), cty.List(cty.String)},
		{"marked tuple", strs.Mark("x"), cty.List(cty.String)},
		{"a marked element", cty.TupleVal([]cty.Value{cty.StringVal("a").Mark("x")}), cty.List(cty.String)},
		{"list of lists (not primitive)", cty.TupleVal([]cty.Value{cty.TupleVal([]cty.Value{cty.StringVal("a")})}), cty.List(cty.List(cty.String))},
		{"a list already", cty.ListVal([]cty.Value{cty.StringVal("a")}), cty.List(cty.String)},
		{"a string to a list", cty.StringVal("a"), cty.List(cty.String)},
		{"to a string", cty.NumberIntVal(1), cty.String},
		{"object to map", cty.ObjectVal(map[string]cty.Value{"a": cty.StringVal("x"), "b": cty.NumberIntVal(1)}), cty.Map(cty.String)},
		{"to any", strs, cty.DynamicPseudoType},
		{"to a list of any", mixed, cty.List(cty.DynamicPseudoType)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, wantErr := convert.Convert(tt.v, tt.ty)
			got, err := convertValue(tt.v, tt.ty)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if wantErr != nil {
				return
			}
			if !got.RawEquals(want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}
