package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// Kind is one module kind a plugin offers, made by NewKind.
type Kind interface {
	def() *kindDef
}

// KindOption refines a Kind declared with NewKind.
type KindOption func(*kindDef)

// Default marks the kind as the plugin's default kind: the one a module
// gets when it names only the plugin (module "shell" "x"). Without it the
// first kind is the default.
func Default() KindOption { return func(k *kindDef) { k.isDefault = true } }

// Doc sets the kind's documentation, shown by `host plugins`.
func Doc(s string) KindOption { return func(k *kindDef) { k.doc = s } }

// Check adds a check of the decoded config beyond what the struct's types
// say (say, "exactly one of command or script"). It runs in Validate and
// before every run; an error fails validation (or the module, with error
// kind "config"). Return AttributeError to point at one attribute. C must
// be the kind's config type, else NewKind panics.
func Check[C any](fn func(cfg C) error) KindOption {
	return func(k *kindDef) {
		k.checks = append(k.checks, checkFunc{typ: reflect.TypeFor[C](), fn: func(v any) error { return fn(v.(C)) }})
	}
}

// AttributeError is a config error about one attribute (a path such as
// "env" or "steps[0].name"), for Check functions.
func AttributeError(attribute, format string, args ...any) error {
	return &attributeError{attribute: attribute, msg: fmt.Sprintf(format, args...)}
}

type attributeError struct {
	attribute, msg string
}

func (e *attributeError) Error() string { return fmt.Sprintf("attribute %q: %s", e.attribute, e.msg) }

type checkFunc struct {
	typ reflect.Type
	fn  func(any) error
}

// kindDef is the type-erased kind: everything the server needs.
type kindDef struct {
	name, resultType, doc string
	isDefault             bool
	configType            reflect.Type
	// resultGoType is R, so Result[R] can check the dependency's type.
	resultGoType reflect.Type
	// resultSchema is R's JSON as a cty JSON type, "" when it cannot be
	// told (see resultSchema).
	resultSchema string
	attrs        []*pluginv1.Attribute
	checks       []checkFunc
	// fields are the config's struct types' attributes, for decoding.
	fields map[reflect.Type][]field
	// run decodes nothing: it gets the decoded config (a C) and returns
	// the result (an R) and the run's error.
	run func(ctx context.Context, m *Module, cfg any) (any, error)
}

func (k *kindDef) def() *kindDef { return k }

// NewKind declares a module kind named name whose result values have the
// versioned type name resultType (e.g. "hello.greet/v1"). C is the config
// struct: its exported fields are the kind's attributes, named by the tag
// `modpipe:"name"` (default: the field name in snake_case), required unless
// tagged `modpipe:"name,optional"`, documented by `doc:"..."`. Supported
// field types: string, bool, integers and floats (number), time.Duration
// (a string like "30s"), slices (list), maps with string keys (map),
// structs (object), pointers to those, any and json.RawMessage (any
// value). R is encoded with encoding/json (use json tags) as the result
// value. Its shape, as encoding/json writes it, is declared to the host
// too, which then refuses a reference to a field R does not have
// (module.x.value.sah) before anything runs: a field whose JSON varies
// with the value (any, json.RawMessage, a type with its own MarshalJSON)
// is not checked past, and an R encoding/json cannot encode declares
// nothing.
//
// run gets a context that is cancelled when the host cancels the module,
// the module's handle and the decoded config. When it returns an error the
// module fails; a non-zero R returned alongside is still sent as the value.
//
// MetaArguments are the attribute names the host keeps for itself in
// every module block (depends_on, timeout, ...): a kind's config cannot
// use them.
var MetaArguments = []string{
	"always_run", "category", "depends_on", "ignore_failure", "limits", "matrix",
	"not_in_parallel", "pin_to_master", "priority", "requires", "retry", "run_if", "timeout",
}

// NewKind panics when C is not a supported struct: that is a programming
// error found the first time the plugin starts.
func NewKind[C any, R any](name, resultType string, run func(ctx context.Context, m *Module, cfg C) (R, error), opts ...KindOption) Kind {
	ct := reflect.TypeFor[C]()
	attrs, err := attributes(ct)
	if err != nil {
		panic(fmt.Sprintf("sdk.NewKind(%q): %v", name, err))
	}
	if name == "" || strings.ContainsAny(name, ". \t\n") {
		panic(fmt.Sprintf("sdk.NewKind(%q): a kind name must be non-empty without dots or spaces", name))
	}
	if resultType == "" {
		panic(fmt.Sprintf("sdk.NewKind(%q): the result type name must not be empty (e.g. \"myplugin.%s/v1\")", name, name))
	}
	for _, a := range attrs {
		if slices.Contains(MetaArguments, a.GetName()) {
			panic(fmt.Sprintf("sdk.NewKind(%q): attribute %q has the name of a meta-argument the host owns, so a pipeline file could never set it; rename it (the modpipe tag)", name, a.GetName()))
		}
	}
	k := &kindDef{
		name:         name,
		resultType:   resultType,
		configType:   ct,
		resultGoType: reflect.TypeFor[R](),
		resultSchema: resultSchema(reflect.TypeFor[R]()),
		attrs:        attrs,
		fields:       structFieldsOf(ct),
		run: func(ctx context.Context, m *Module, cfg any) (any, error) {
			return run(ctx, m, cfg.(C))
		},
	}
	for _, opt := range opts {
		opt(k)
	}
	for _, c := range k.checks {
		if c.typ != ct {
			panic(fmt.Sprintf("sdk.NewKind(%q): sdk.Check is for config type %s, but the kind's config type is %s", name, c.typ, ct))
		}
	}
	return k
}

// decodeConfig decodes and checks a JSON config. The returned errors are
// the config's problems, all of them.
func (k *kindDef) decodeConfig(configJSON string) (any, []configError) {
	v := reflect.New(k.configType).Elem()
	d := decoder{fields: k.fields}
	raw := json.RawMessage(configJSON)
	if isNull(raw) {
		raw = json.RawMessage("{}")
	}
	d.decode(raw, v, "")
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	cfg := v.Interface()
	for _, c := range k.checks {
		if err, stack := c.call(cfg); stack != "" {
			d.errs = append(d.errs, configError{summary: "Plugin check panicked",
				detail: fmt.Sprintf("kind %q: an sdk.Check function panicked: %v (a bug in the plugin, not in the configuration)", k.name, err), stack: stack})
		} else if err != nil {
			var ae *attributeError
			if errors.As(err, &ae) {
				d.errs = append(d.errs, configError{path: ae.attribute, summary: "Invalid attribute value", detail: ae.msg})
			} else {
				d.errs = append(d.errs, configError{summary: "Invalid configuration", detail: err.Error()})
			}
		}
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return cfg, nil
}

func (k *kindDef) describe() *pluginv1.ModuleKind {
	return &pluginv1.ModuleKind{
		Name:         k.name,
		Default:      k.isDefault,
		Doc:          k.doc,
		ResultType:   k.resultType,
		Attributes:   k.attrs,
		ResultSchema: k.resultSchema,
	}
}

// call runs the check, turning a panic into its value and stack: a bug in
// one check must not take down the plugin and every module in it.
func (c checkFunc) call(cfg any) (err error, stack string) {
	defer func() {
		if r := recover(); r != nil {
			err, stack = fmt.Errorf("%v", r), fmt.Sprintf("panic: %v\n\n%s", r, debug.Stack())
		}
	}()
	return c.fn(cfg), ""
}
