package config

import (
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
)

// Facts are what the running instance knows about itself. They are the
// run.* values of expressions.
type Facts struct {
	OS           string // "linux", "windows", "macos"
	Arch         string // "amd64", "arm64"
	Instance     int    // 0 = master or single machine
	CI           bool   // running under a CI system
	Capabilities []string
}

// Options are the inputs of Load that do not come from the file.
type Options struct {
	// Vars are the --var name=value pairs, by name.
	Vars map[string]string
	// Environ is the environment in os.Environ form ("NAME=value"). It is
	// the only environment the file sees: env() and MODPIPE_VAR_name read
	// it, never the process environment, so loads are reproducible.
	Environ []string
	Facts   Facts
	// Values, when not nil, are variable values resolved elsewhere (by
	// the master of a distributed run, which publishes them with the run):
	// a variable named here takes this value, converted to its declared
	// type, instead of --var, MODPIPE_VAR_name or its default, so every
	// instance sees the same values. A name the file does not declare is
	// an error, as for Vars.
	Values map[string]cty.Value
	// Locals, when not nil, are local values evaluated elsewhere (by the
	// master): a local named here takes this value instead of being
	// evaluated, so env() and run.* in locals mean the master's.
	Locals map[string]cty.Value
}

// On-failure policies of the pipeline block.
const (
	OnFailureStop     = "stop"
	OnFailureContinue = "continue"
)

// Pipeline is a loaded pipeline file. It is read-only after Load and safe
// for concurrent use.
type Pipeline struct {
	// Filename is the path the file was loaded from; Dir is its directory,
	// absolute, against which relative paths in the file are resolved.
	Filename string
	Dir      string

	Name string
	// OnFailure is OnFailureStop (the default) or OnFailureContinue.
	OnFailure string
	// Secrets are names of environment variables whose values must be
	// masked in every output.
	Secrets []string

	Plugins   map[string]*PluginBlock
	Variables map[string]*Variable
	Locals    map[string]cty.Value
	Limits    map[string]*Limit
	// Modules are in file order.
	Modules []*Module
	// Distributed is nil when the file has no distributed block.
	Distributed *Distributed

	// Files are the parsed files by name, for rendering diagnostics with
	// source snippets.
	Files map[string]*hcl.File

	environ   map[string]string
	functions map[string]function.Function
	// sensitiveInputs are the raw values given for sensitive variables
	// (--var, environment), kept even when they do not parse: the error
	// that says so must not show them.
	sensitiveInputs []string
	// givenValues and givenLocals are Options.Values and Options.Locals.
	givenValues map[string]cty.Value
	givenLocals map[string]cty.Value
	facts       Facts
	byName      map[string]*Module

	// static is the evaluation context of static checks, built once; see
	// Module.staticContext.
	staticOnce sync.Once
	static     *hcl.EvalContext
}

// PluginBlock is a plugin "NAME" block.
type PluginBlock struct {
	Name string
	// Source is the absolute path of the plugin binary, or "" when the
	// block does not set it and the binary is looked up by name.
	Source    string
	Args      []string
	Env       map[string]string
	SHA256    string // lower-case hex, "" when not pinned
	DeclRange hcl.Range
}

// Variable is a variable "NAME" block with its resolved value.
type Variable struct {
	Name        string
	Value       cty.Value
	Type        cty.Type
	Sensitive   bool
	Description string
	DeclRange   hcl.Range
}

// Limit is a limit "NAME" block: a named concurrency group.
type Limit struct {
	Name      string
	Max       int
	DeclRange hcl.Range
}

// Distributed holds the distributed block. Durations are zero when unset;
// the engine applies its defaults.
type Distributed struct {
	Capabilities      []string
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	CapabilityTimeout time.Duration
	// Coordinator names the coordinator implementation, e.g. "etcd".
	Coordinator string
	Etcd        *Etcd // nil when absent
	DeclRange   hcl.Range
}

// Etcd is the etcd block inside distributed. File paths are absolute.
type Etcd struct {
	Endpoints []string
	Prefix    string
	Username  string
	Password  string
	CAFile    string
	CertFile  string
	KeyFile   string
	DeclRange hcl.Range
}

// Module is one module block with its meta-arguments decoded.
type Module struct {
	Name string
	// Plugin is the plugin that provides the module's kind; Kind is the
	// kind within the plugin, "" for the plugin's default kind.
	Plugin string
	Kind   string
	// Index is the module's position in the file.
	Index     int
	DeclRange hcl.Range
	KindRange hcl.Range

	// DependsOn are the module names listed in depends_on.
	DependsOn []string
	// References are the module names that the body and run_if refer to,
	// deduplicated, in order of appearance.
	References []string
	// RefRanges holds, per depended-on module name (from depends_on or a
	// reference), the range of the first place that names it.
	RefRanges map[string]hcl.Range
	// RefInstances narrows a dependency on a matrix module to some of its
	// instances: when every reference to module NAME indexes it with a
	// literal key (module.test["linux"], depends_on = [module.test["linux"]]),
	// RefInstances[NAME] lists those keys. Absent means every instance.
	RefInstances map[string][]string
	// refKeyExprs are the index expressions of references to module NAME
	// indexed with an expression of matrix values, variables or locals
	// (module.build[matrix.target]): each instance of this module depends
	// on the instance its own values name. See InstanceKeys.
	refKeyExprs map[string][]hcl.Expression
	// keyRanges holds, per module name and literal instance key, the
	// index of the first reference with that key, so an error about one
	// key points at it rather than at the module's first reference.
	keyRanges map[string]map[string]hcl.Range
	// wholeRefs are the modules referred to without a literal index.
	wholeRefs map[string]bool
	// indexedRefs holds, per module referred to with an instance key,
	// the first such reference, to refuse one into a module without a
	// matrix.
	indexedRefs map[string]hcl.Range
	// dependsKeys are the index expressions of depends_on's references.
	dependsKeys []hcl.Expression

	Timeout       time.Duration // 0 = none
	Retry         Retry
	AlwaysRun     bool
	IgnoreFailure bool
	PinToMaster   bool
	Priority      int
	Category      string
	Requires      []string
	// NotInParallel are the keys of not_in_parallel = [...]; Exclusive is
	// not_in_parallel = true (run alone).
	NotInParallel []string
	Exclusive     bool
	Limits        []string
	// RunIf is the unevaluated run_if expression, nil when absent.
	RunIf hcl.Expression
	// Matrix is nil when the module has no matrix.
	Matrix *Matrix
	// Body is the rest of the block: the plugin's attributes.
	Body hcl.Body

	runIfSource string
	// bodyAttrs are the plugin attributes' expressions, for static checks.
	bodyAttrs map[string]hcl.Expression
	// plainBody: the body is native syntax with no block besides the
	// meta-arguments' (retry, matrix), so bodyAttrs is all of it.
	plainBody bool
	pipeline  *Pipeline
	// matrixDeclared: the block declares a matrix, even one whose errors
	// left Matrix nil (its references are not reported again).
	matrixDeclared bool
}

// KindLabel is the module's first label as written: PLUGIN or PLUGIN.KIND.
func (m *Module) KindLabel() string {
	if m.Kind == "" {
		return m.Plugin
	}
	return m.Plugin + "." + m.Kind
}

// Retry is the retry block: Attempts is the total number of tries (>= 1),
// Backoff the wait before the second try (the engine grows it).
type Retry struct {
	Attempts int
	Backoff  time.Duration
}

// Matrix is a module's matrix: the product of its axes minus exclusions.
type Matrix struct {
	Axes    []Axis
	Exclude []map[string]string
	// List is the form matrix = [...]: one axis, target, whose values are
	// required capabilities; Range is that list's place in the file.
	List  bool
	Range hcl.Range
}

// Axis is one matrix dimension. The single-axis form
// `matrix = [...]` has one axis named "target".
type Axis struct {
	Name   string
	Values []string
}

// Instance is one expansion of a matrix module.
type Instance struct {
	// Key is the value for a single-axis matrix ("linux") and
	// "axis=value,..." in axis order for several axes
	// ("target=linux,go=1.26").
	Key    string
	Values map[string]string
}

// MatrixTargetAxis is the axis that becomes a capability requirement.
const MatrixTargetAxis = "target"

// SensitiveInputs are the values given on the command line or in the
// environment for the variables marked sensitive, as given: with the
// variables' parsed values, what a masker must hide.
func (p *Pipeline) SensitiveInputs() []string { return p.sensitiveInputs }
