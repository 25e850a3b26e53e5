package config

import (
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// convertValue is convert.Convert, without its quadratic cost on a long
// tuple. cty converts a tuple to a list by converting each element and
// then unifying the elements' types, and its unification compares every
// pair of types: a matrix axis of 10,000 values (the most a module may
// have) took `host validate` 1.6 s, 12 of every 13 samples in that
// comparison. When the target is a list or set of a primitive type, each
// element converts to that type alone and there is nothing to unify, so
// the elements are converted one by one here; the result is the one
// convert.Convert gives. Anything else, and any element that does not
// convert, goes to convert.Convert, so its errors (and their paths) are
// its own.
func convertValue(v cty.Value, ty cty.Type) (cty.Value, error) {
	if !(ty.IsListType() || ty.IsSetType()) || !ty.ElementType().IsPrimitiveType() ||
		!v.Type().IsTupleType() || v.ContainsMarked() || !v.IsKnown() || v.IsNull() || v.LengthInt() == 0 {
		return convert.Convert(v, ty)
	}
	et := ty.ElementType()
	elems := make([]cty.Value, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		cv, err := convert.Convert(ev, et)
		if err != nil {
			return convert.Convert(v, ty)
		}
		elems = append(elems, cv)
	}
	if ty.IsSetType() {
		return cty.SetVal(elems), nil
	}
	return cty.ListVal(elems), nil
}
