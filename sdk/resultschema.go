package sdk

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
)

// The result schema is the type of a kind's result values, derived from
// R the way encoding/json encodes an R, and sent to the host in Describe
// (ModuleKind.result_schema) so that it can refuse module.x.value.sah
// before anything runs. A schema that says less than the truth costs a
// typo found at run time; one that says something wrong refuses a valid
// pipeline. So wherever the encoding depends on the value rather than the
// type (a json.Marshaler, an interface) the part is "dynamic", and a type
// encoding/json cannot encode gives no schema at all.

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	timeType          = reflect.TypeFor[time.Time]()
	jsonNumberType    = reflect.TypeFor[json.Number]()
)

// resultSchema returns the cty JSON type of the values encoding/json
// makes of a t, or "" when t cannot be described (encoding/json would
// refuse it).
func resultSchema(t reflect.Type) string {
	ty, err := resultCtyType(t, nil)
	if err != nil {
		return ""
	}
	b, err := json.Marshal(ty)
	if err != nil {
		return ""
	}
	return string(b)
}

// resultCtyType is the cty JSON type (as a value json.Marshal renders) of
// what encoding/json makes of a t, inside the structs on path.
func resultCtyType(t reflect.Type, path []reflect.Type) (any, error) {
	if t.Kind() == reflect.Pointer {
		// What a pointer's method set says comes first, as for
		// encoding/json: *E has E's methods and its own.
		switch {
		case t.Elem() == timeType:
			return "string", nil
		case t.Implements(marshalerType):
			return "dynamic", nil
		case t.Implements(textMarshalerType):
			return "string", nil
		}
		return resultCtyType(t.Elem(), path)
	}
	switch {
	case t == timeType:
		return "string", nil // RFC 3339, through its MarshalJSON
	case t == jsonNumberType:
		return "number", nil
	case t.Implements(marshalerType):
		// Its own JSON, whatever it is (json.RawMessage among them).
		return "dynamic", nil
	case reflect.PointerTo(t).Implements(marshalerType):
		// Its MarshalJSON is used only where the value is addressable
		// (behind a pointer, not in a value passed by itself).
		return "dynamic", nil
	case t.Implements(textMarshalerType):
		return "string", nil
	case reflect.PointerTo(t).Implements(textMarshalerType):
		return "dynamic", nil // a string, or the kind's own encoding
	}
	switch t.Kind() {
	case reflect.Interface:
		return "dynamic", nil
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p := reflect.PointerTo(t.Elem())
			if !p.Implements(marshalerType) && !p.Implements(textMarshalerType) {
				return "string", nil // []byte: base64
			}
		}
		fallthrough
	case reflect.Array:
		et, err := resultCtyType(t.Elem(), path)
		if err != nil {
			return nil, err
		}
		return []any{"list", et}, nil
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !t.Key().Implements(textMarshalerType) {
				return nil, fmt.Errorf("map type %s: encoding/json cannot encode its keys", t)
			}
		}
		et, err := resultCtyType(t.Elem(), path)
		if err != nil {
			return nil, err
		}
		return []any{"map", et}, nil
	case reflect.Struct:
		if slices.Contains(path, t) {
			// A type that contains itself: cty types are finite, so
			// the part where it recurs is whatever it holds.
			return "dynamic", nil
		}
		path = append(path[:len(path):len(path)], t)
		attrs := map[string]any{}
		var optional []string
		for _, f := range jsonFields(t) {
			ft, err := resultCtyType(f.typ, path)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", f.name, err)
			}
			if f.quoted && (ft == "number" || ft == "bool") {
				ft = "string" // `json:",string"`; a marshaler ignores it
			}
			attrs[f.name] = ft
			if f.optional {
				optional = append(optional, f.name)
			}
		}
		return objectType(attrs, optional), nil
	}
	return nil, fmt.Errorf("type %s: encoding/json cannot encode it", t)
}

// jsonField is one key of the JSON object encoding/json makes of a
// struct.
type jsonField struct {
	name string
	typ  reflect.Type
	// optional: the key may be absent (omitempty, omitzero, or a field
	// of an embedded struct pointer, which is left out when it is nil).
	optional bool
	// quoted: `json:",string"` on a scalar, which it writes as a string.
	quoted bool
	// tagged: the name comes from a json tag; depth: how many embedded
	// structs deep the field is. Both settle conflicts as encoding/json
	// does.
	tagged bool
	depth  int
}

// jsonFields returns the keys encoding/json writes for struct type t: its
// exported fields named by their json tags, without `json:"-"` ones, the
// fields of embedded structs flattened into it, and, where names clash,
// the one Go's rules for embedded fields select (the shallowest, then the
// tagged one; none when that leaves two). It follows typeFields in
// encoding/json.
func jsonFields(t reflect.Type) []jsonField {
	type embedded struct {
		typ      reflect.Type
		depth    int
		optional bool
	}
	var fields []jsonField
	next := []embedded{{typ: t}}
	// count: how many times each struct of this level is embedded in the
	// level above; nextCount, of the next level.
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, e := range current {
			if visited[e.typ] {
				continue
			}
			visited[e.typ] = true
			for i := 0; i < e.typ.NumField(); i++ {
				sf := e.typ.Field(i)
				if sf.Anonymous {
					ft := sf.Type
					if ft.Kind() == reflect.Pointer {
						ft = ft.Elem()
					}
					if !sf.IsExported() && ft.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validJSONTag(name) {
					name = ""
				}
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := jsonField{name: name, typ: sf.Type, tagged: name != "", depth: e.depth, optional: e.optional}
					if f.name == "" {
						f.name = sf.Name
					}
					for _, o := range strings.Split(opts, ",") {
						switch o {
						case "omitempty":
							// A struct is never empty to encoding/json.
							f.optional = f.optional || ft.Kind() != reflect.Struct || sf.Type.Kind() == reflect.Pointer
						case "omitzero":
							f.optional = true
						case "string":
							switch ft.Kind() {
							case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
								reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
								reflect.Float32, reflect.Float64, reflect.String:
								f.quoted = true
							}
						}
					}
					fields = append(fields, f)
					if count[e.typ] > 1 {
						// The same struct embedded twice at this depth:
						// its fields clash with themselves.
						fields = append(fields, f)
					}
					continue
				}
				// An embedded struct: its fields are the parent's, one
				// level deeper; behind a nil pointer they are left out.
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, embedded{typ: ft, depth: e.depth + 1, optional: e.optional || sf.Type.Kind() == reflect.Pointer})
				}
			}
		}
	}
	// Settle clashes: by name, the shallowest first, tagged before not.
	sort.SliceStable(fields, func(i, j int) bool {
		a, b := fields[i], fields[j]
		if a.name != b.name {
			return a.name < b.name
		}
		if a.depth != b.depth {
			return a.depth < b.depth
		}
		return a.tagged && !b.tagged
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		if j-i == 1 || fields[i].depth != fields[i+1].depth || fields[i].tagged != fields[i+1].tagged {
			out = append(out, fields[i])
		}
		i = j
	}
	return out
}

// validJSONTag is encoding/json's isValidTag: a tag name it uses rather
// than the field's name.
func validJSONTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
