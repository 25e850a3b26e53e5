package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// The config schema is derived from the config struct by reflection, once,
// when the kind is declared. The same field table then drives decoding, so
// the names the host validates against and the names the plugin decodes
// can never disagree.

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	durationType   = reflect.TypeFor[time.Duration]()
)

// field is one attribute of a config struct (or of a nested object).
type field struct {
	name     string
	index    int
	optional bool
	doc      string
	typ      reflect.Type
}

// structFieldsOf returns the attributes of every struct type reachable
// from t, for decoders: working them out by reflection on every decode was
// a fifth of decoding a small config, which the sdk does for every module.
func structFieldsOf(t reflect.Type) map[reflect.Type][]field {
	out := map[reflect.Type][]field{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
		case reflect.Struct:
			if _, seen := out[t]; seen {
				return
			}
			fields, err := structFields(t)
			if err != nil {
				return // reported by NewKind
			}
			out[t] = fields
			for _, f := range fields {
				walk(f.typ)
			}
		}
	}
	walk(t)
	return out
}

// structFields returns the attributes of struct type t, in field order.
func structFields(t reflect.Type) ([]field, error) {
	return structFieldsOn(t, []reflect.Type{t})
}

// structFieldsOn is structFields for t at the end of path (see ctyTypeOn).
func structFieldsOn(t reflect.Type, path []reflect.Type) ([]field, error) {
	var fields []field
	seen := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("modpipe")
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		if name == "" {
			name = snakeCase(sf.Name)
		}
		f := field{name: name, index: i, doc: sf.Tag.Get("doc"), typ: sf.Type}
		for _, flag := range strings.Split(flags, ",") {
			switch strings.TrimSpace(flag) {
			case "":
			case "optional":
				f.optional = true
			default:
				return nil, fmt.Errorf("field %s: unknown modpipe tag option %q (only \"optional\" is known)", sf.Name, flag)
			}
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("fields %s and %s both map to attribute %q", other, sf.Name, name)
		}
		seen[name] = sf.Name
		if _, err := ctyTypeOn(sf.Type, path); err != nil {
			return nil, fmt.Errorf("field %s (attribute %q): %w", sf.Name, name, err)
		}
		fields = append(fields, f)
	}
	return fields, nil
}

// ctyType returns the cty JSON type encoding of Go type t, as a value that
// encoding/json renders deterministically (map keys are sorted).
func ctyType(t reflect.Type) (any, error) {
	return ctyTypeOn(t, nil)
}

// ctyTypeOn is ctyType for t inside the structs on path, the fields that
// lead to it: a struct that contains itself has no cty type (HCL types
// are finite), and following it would never end.
func ctyTypeOn(t reflect.Type, path []reflect.Type) (any, error) {
	switch {
	case t == rawMessageType:
		return "dynamic", nil
	case t == durationType:
		return "string", nil
	}
	switch t.Kind() {
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return nil, fmt.Errorf("interface type %s is not supported: use any or json.RawMessage", t)
		}
		return "dynamic", nil
	case reflect.Pointer:
		return ctyTypeOn(t.Elem(), path)
	case reflect.String:
		return "string", nil
	case reflect.Bool:
		return "bool", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number", nil
	case reflect.Slice:
		et, err := ctyTypeOn(t.Elem(), path)
		if err != nil {
			return nil, err
		}
		return []any{"list", et}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map type %s is not supported: map keys must be strings", t)
		}
		et, err := ctyTypeOn(t.Elem(), path)
		if err != nil {
			return nil, err
		}
		return []any{"map", et}, nil
	case reflect.Struct:
		if i := slices.Index(path, t); i >= 0 {
			names := make([]string, 0, len(path)-i+1)
			for _, p := range path[i:] {
				names = append(names, p.String())
			}
			return nil, fmt.Errorf("type %s contains itself (%s -> %s): a config is a tree of HCL values, which cannot nest without end; declare the recursive part as any or json.RawMessage and decode it yourself", t, strings.Join(names, " -> "), t)
		}
		path = append(path[:len(path):len(path)], t)
		fields, err := structFieldsOn(t, path)
		if err != nil {
			return nil, err
		}
		attrs := map[string]any{}
		var optional []string
		for _, f := range fields {
			ft, err := ctyTypeOn(f.typ, path)
			if err != nil {
				return nil, err
			}
			attrs[f.name] = ft
			if f.optional {
				optional = append(optional, f.name)
			}
		}
		return objectType(attrs, optional), nil
	}
	return nil, fmt.Errorf("type %s is not supported in a config: use string, bool, a number, a slice, a map with string keys, a struct, any or json.RawMessage", t)
}

// objectType is cty's JSON encoding of an object type with attrs, the
// optional ones (sorted) listed as its third element when there are any.
func objectType(attrs map[string]any, optional []string) any {
	if len(optional) == 0 {
		return []any{"object", attrs}
	}
	sort.Strings(optional)
	return []any{"object", attrs, optional}
}

// attributes describes the config struct type t for Describe.
func attributes(t reflect.Type) ([]*pluginv1.Attribute, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("config type %s is not a struct", t)
	}
	fields, err := structFields(t)
	if err != nil {
		return nil, err
	}
	attrs := make([]*pluginv1.Attribute, 0, len(fields))
	for _, f := range fields {
		ct, err := ctyType(f.typ)
		if err != nil {
			return nil, err
		}
		typeJSON, err := json.Marshal(ct)
		if err != nil {
			return nil, fmt.Errorf("encode type of attribute %q: %w", f.name, err)
		}
		attrs = append(attrs, &pluginv1.Attribute{
			Name:     f.name,
			Type:     string(typeJSON),
			Required: !f.optional,
			Doc:      f.doc,
		})
	}
	return attrs, nil
}

// snakeCase turns a Go field name into an attribute name: StdoutJSON ->
// stdout_json, Dir -> dir.
func snakeCase(s string) string {
	runes := []rune(s)
	var b strings.Builder
	for i, r := range runes {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && !unicode.IsUpper(runes[i-1])
			nextLower := i > 0 && i+1 < len(runes) && unicode.IsLower(runes[i+1]) && unicode.IsUpper(runes[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// configError is one problem found while decoding a config.
type configError struct {
	path    string // attribute path, e.g. "env" or "steps[2].name"
	summary string
	detail  string
	// stack is set when a check panicked: the fault is the plugin's,
	// not the config's.
	stack string
}

// decoder decodes a JSON config into a config struct, collecting every
// problem rather than stopping at the first, so the user sees them all.
type decoder struct {
	errs []configError
	// fields are the struct types' attributes, worked out once per kind
	// (see structFieldsOf); a type missing from it is worked out here.
	fields map[reflect.Type][]field
}

func (d *decoder) fail(path, summary, detail string, args ...any) {
	d.errs = append(d.errs, configError{path: path, summary: summary, detail: fmt.Sprintf(detail, args...)})
}

// nullable reports whether a null can stand for a value of type t in a
// list or map: a pointer, any or a raw JSON value.
func nullable(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface || t == rawMessageType
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// decode decodes raw into v (addressable), path naming v for messages.
func (d *decoder) decode(raw json.RawMessage, v reflect.Value, path string) {
	t := v.Type()
	if t == rawMessageType {
		if !isNull(raw) {
			v.SetBytes(append([]byte(nil), raw...))
		}
		return
	}
	if isNull(raw) {
		return // leave the zero value: absent and null mean the same
	}
	switch {
	case t == durationType:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			d.fail(path, "Incorrect attribute value type", "attribute %q must be a duration string such as \"30s\" or \"5m\", got %s", path, abbreviate(raw))
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, "Invalid duration", "attribute %q: %q is not a duration; write it like \"30s\", \"5m\" or \"1h30m\"", path, s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(raw, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			d.fail(path, "Incorrect attribute value type", "%s must be an object, got %s", describePath(path), abbreviate(raw))
			return
		}
		d.decodeStruct(obj, v, path)
	case reflect.Slice:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			d.fail(path, "Incorrect attribute value type", "%s must be a list, got %s", describePath(path), abbreviate(raw))
			return
		}
		s := reflect.MakeSlice(t, len(items), len(items))
		for i, item := range items {
			p := path + "[" + strconv.Itoa(i) + "]"
			if isNull(item) && !nullable(t.Elem()) {
				// ["echo", null] would otherwise run `echo ""`.
				d.fail(p, "Null element", "%s is null; a list's elements must have values", describePath(p))
				continue
			}
			d.decode(item, s.Index(i), p)
		}
		v.Set(s)
	case reflect.Map:
		var items map[string]json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			d.fail(path, "Incorrect attribute value type", "%s must be a map, got %s", describePath(path), abbreviate(raw))
			return
		}
		m := reflect.MakeMapWithSize(t, len(items))
		keys := make([]string, 0, len(items))
		for k := range items {
			keys = append(keys, k)
		}
		sort.Strings(keys) // report errors in a stable order
		for _, k := range keys {
			ev := reflect.New(t.Elem()).Elem()
			p := path + "[" + strconv.Quote(k) + "]"
			if isNull(items[k]) && !nullable(t.Elem()) {
				d.fail(p, "Null element", "%s is null; a map's values must have values", describePath(p))
				continue
			}
			d.decode(items[k], ev, p)
			m.SetMapIndex(reflect.ValueOf(k).Convert(t.Key()), ev)
		}
		v.Set(m)
	default:
		// A plain string (most of any config) is taken as it is; what
		// it would take encoding/json to decode goes to encoding/json.
		if t == stringType {
			if s, ok := plainJSONString(raw); ok {
				v.SetString(s)
				return
			}
		}
		// Scalars and any: encoding/json checks the JSON type and the
		// range (an int refuses 1.5 and out-of-range numbers).
		if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
			d.fail(path, "Incorrect attribute value type", "%s must be %s, got %s", describePath(path), typeWord(t), abbreviate(raw))
		}
	}
}

// decodeStruct decodes an object into struct v: unknown attributes and
// missing required ones are errors.
func (d *decoder) decodeStruct(obj map[string]json.RawMessage, v reflect.Value, path string) {
	fields, ok := d.fields[v.Type()]
	var err error
	if !ok {
		fields, err = structFields(v.Type())
	}
	if err != nil { // checked when the kind was declared
		d.fail(path, "Invalid config type", "%v", err)
		return
	}
	var unknown []string
	for name := range obj {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.name == name }) {
			unknown = append(unknown, name)
		}
	}
	var known []string
	if len(unknown) > 0 {
		sort.Strings(unknown)
		for _, f := range fields {
			known = append(known, f.name)
		}
	}
	for _, name := range unknown {
		detail := fmt.Sprintf("An attribute named %q is not expected here.", name)
		if s := suggest(name, known); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		d.fail(join(path, name), "Unsupported attribute", "%s", detail)
	}
	for _, f := range fields {
		raw, ok := obj[f.name]
		if !f.optional && (!ok || isNull(raw)) {
			d.fail(join(path, f.name), "Missing required attribute", "The attribute %q is required, but no value was given.", join(path, f.name))
			continue
		}
		if ok {
			d.decode(raw, v.Field(f.index), join(path, f.name))
		}
	}
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func describePath(path string) string {
	if path == "" {
		return "the configuration"
	}
	return fmt.Sprintf("attribute %q", path)
}

func typeWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number in range for " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

func abbreviate(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// suggest returns the known name closest to name when it is close enough
// to be a likely typo, else "".
func suggest(name string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if dist := levenshtein(name, k); dist < bestDist {
			best, bestDist = k, dist
		}
	}
	return best
}

func levenshtein(a, b string) int {
	ar, br := []rune(a), []rune(b)
	prev := make([]int, len(br)+1)
	cur := make([]int, len(br)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ar); i++ {
		cur[0] = i
		for j := 1; j <= len(br); j++ {
			cost := 1
			if ar[i-1] == br[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(br)]
}

// stringType is the type plainJSONString decodes to.
var stringType = reflect.TypeFor[string]()

// plainJSONString is the string JSON text raw encodes, when raw is a
// string literal with nothing to decode in it: no escapes, no control
// characters, valid UTF-8, optional white space around it. Anything else
// is left to encoding/json (ok false), which gives the same value for
// what this accepts.
func plainJSONString(raw []byte) (string, bool) {
	raw = bytes.Trim(raw, " \t\r\n")
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(body) {
		return "", false
	}
	return string(body), true
}
