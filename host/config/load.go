package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/hclscan"
)

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "pipeline"},
		{Type: "plugin", LabelNames: []string{"name"}},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "limit", LabelNames: []string{"name"}},
		{Type: "distributed"},
		{Type: "module", LabelNames: []string{"kind", "name"}},
	},
}

// Load reads, parses and decodes the pipeline file at filename.
//
// It returns a nil Pipeline only when the file cannot be read. When the
// file has syntax errors, the Pipeline carries only Filename, Dir and
// Files (so the diagnostics can be rendered with snippets) and decoding
// stops there, because a partly parsed body would produce misleading
// follow-on errors. Otherwise every block is decoded and all problems are
// returned together; the Pipeline is usable for inspection but must not
// be run when diags has errors.
func Load(filename string, opts Options) (*Pipeline, hcl.Diagnostics) {
	if filename == "-" {
		// The convention of reading standard input does not fit: the
		// file's folder is where its relative paths start (file(),
		// plugin sources), and a fleet's instances each read the file.
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the pipeline file",
			Detail:   `The pipeline is read from a file, and "-" (standard input) is not one: save the pipeline to a file and give its path. Its folder is where relative paths in it start (file(), plugin sources). To read a pipe anyway, give /dev/stdin: relative paths in it then start from /dev, so make them absolute.`,
		}}
	}
	src, err := ReadFile(filename)
	if err != nil {
		return nil, ReadDiagnostics(err)
	}
	return LoadSource(filename, src, opts)
}

// MaxPipelineFile is the largest pipeline file read: 10,000 modules take
// about 1 MB, and the parse holds ~70 times the file in memory, so a
// larger one is most often the wrong path (a build output, /dev/zero)
// that would otherwise be read, without end, before anything is said.
const MaxPipelineFile = 64 << 20

// ReadFile reads the pipeline file at filename, at most MaxPipelineFile
// bytes of it: the one read every command makes of it. Its error names
// the file and says what to check.
func ReadFile(filename string) ([]byte, error) {
	f, err := os.Open(filename)
	if err != nil {
		return nil, fmt.Errorf("reading %s failed: %w. Check the path given on the command line", filename, err)
	}
	defer f.Close()
	tooLarge := func() error {
		return fmt.Errorf("%s is larger than %d MiB, the most a pipeline file may be: check the path given on the command line (it may be a build output, a disk image or a device)", filename, MaxPipelineFile>>20)
	}
	if info, err := f.Stat(); err == nil && info.Mode().IsRegular() && info.Size() > MaxPipelineFile {
		return nil, tooLarge()
	}
	// The limit also holds where the size says nothing (a device, a
	// pipe, a /proc file) and for a file that grew since.
	src, err := io.ReadAll(io.LimitReader(f, MaxPipelineFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s failed: %w. Check the path given on the command line", filename, err)
	}
	if len(src) > MaxPipelineFile {
		return nil, tooLarge()
	}
	return src, nil
}

// ReadDiagnostics is ReadFile's error as the load reports it.
func ReadDiagnostics(err error) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Cannot read the pipeline file",
		Detail:   strings.ToUpper(err.Error()[:1]) + err.Error()[1:] + ".",
	}}
}

// LoadSource is Load for a file whose contents are already in memory.
// filename is used for diagnostics and relative paths.
func LoadSource(filename string, src []byte, opts Options) (*Pipeline, hcl.Diagnostics) {
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		dir = filepath.Dir(filename)
	}
	environ := parseEnviron(opts.Environ)
	p := &Pipeline{
		Filename:  filename,
		Dir:       dir,
		OnFailure: OnFailureStop,
		Plugins:   map[string]*PluginBlock{},
		Variables: map[string]*Variable{},
		Locals:    map[string]cty.Value{},
		Limits:    map[string]*Limit{},
		Files:     map[string]*hcl.File{},
		environ:   environ,
		functions: functions(dir, environ),
		facts:     opts.Facts,
		byName:    map[string]*Module{},

		givenValues: opts.Values,
		givenLocals: opts.Locals,
	}

	if d := notText(filename, src); d != nil {
		// A binary (a path mixed up with another argument) would parse
		// into thousands of errors, slowly.
		return p, hcl.Diagnostics{d}
	}
	// A file saved with Windows line endings parses alike, but its
	// heredocs would keep a \r at the end of every line: a script that
	// validates, then fails in /bin/sh on every line.
	src = bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
	file, diags := parseFile(src, filename)
	if file != nil {
		p.Files[filename] = file
	}
	if file == nil || (diags.HasErrors() && !onlyRedefinitions(diags)) {
		return p, capSyntaxErrors(filename, diags)
	}

	content, moreDiags := file.Body.Content(fileSchema)
	diags = append(diags, moreDiags...)

	// Order matters: variables feed locals, and both feed every
	// load-time expression below.
	var varBlocks, localBlocks, pipelineBlocks, pluginBlocks, limitBlocks, distBlocks, moduleBlocks []*hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "variable":
			varBlocks = append(varBlocks, b)
		case "locals":
			localBlocks = append(localBlocks, b)
		case "pipeline":
			pipelineBlocks = append(pipelineBlocks, b)
		case "plugin":
			pluginBlocks = append(pluginBlocks, b)
		case "limit":
			limitBlocks = append(limitBlocks, b)
		case "distributed":
			distBlocks = append(distBlocks, b)
		case "module":
			moduleBlocks = append(moduleBlocks, b)
		}
	}

	diags = append(diags, p.decodeVariables(varBlocks, opts.Vars)...)
	diags = append(diags, p.decodeLocals(localBlocks)...)
	ctx := p.EvalContext(Scope{Facts: opts.Facts})

	if len(pipelineBlocks) > 1 {
		diags = append(diags, duplicateBlock("pipeline", "", pipelineBlocks[1].DefRange, pipelineBlocks[0].DefRange))
	}
	if len(pipelineBlocks) > 0 {
		diags = append(diags, p.decodePipelineBlock(pipelineBlocks[0], ctx)...)
	}
	for _, b := range pluginBlocks {
		diags = append(diags, p.decodePlugin(b, ctx)...)
	}
	for _, b := range limitBlocks {
		diags = append(diags, p.decodeLimit(b, ctx)...)
	}
	if len(distBlocks) > 1 {
		diags = append(diags, duplicateBlock("distributed", "", distBlocks[1].DefRange, distBlocks[0].DefRange))
	}
	if len(distBlocks) > 0 {
		diags = append(diags, p.decodeDistributed(distBlocks[0], ctx)...)
	}
	for _, b := range moduleBlocks {
		diags = append(diags, p.decodeModule(b, ctx)...)
	}
	// References can only be checked once every module name is known.
	for _, m := range p.Modules {
		diags = append(diags, m.checkReferences()...)
	}
	SortDiagnostics(diags)
	return p, diags
}

// SortDiagnostics orders diagnostics by their position in the file, those
// without a position first, so that output is stable (hcl reports some
// problems in map order) and reads top to bottom.
func SortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return a == nil && b != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

// Module returns the module named name, or nil.
func (p *Pipeline) Module(name string) *Module { return p.byName[name] }

// ModuleNames returns the names of the modules in file order.
func (p *Pipeline) ModuleNames() []string {
	names := make([]string, len(p.Modules))
	for i, m := range p.Modules {
		names[i] = m.Name
	}
	return names
}

func parseEnviron(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			m[k] = v
		}
	}
	return m
}

func duplicateBlock(kind, name string, rng, prev hcl.Range) *hcl.Diagnostic {
	if name == "" {
		return &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Duplicate %s block", kind),
			Detail:   fmt.Sprintf("Only one %s block is allowed here, and one was already declared at %s. Merge them into one.", kind, prev),
			Subject:  rng.Ptr(),
		}
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s %q", kind, name),
		Detail:   fmt.Sprintf("A %s named %q was already declared at %s. Remove one of them or give it another name.", kind, name, prev),
		Subject:  rng.Ptr(),
	}
}

var pipelineSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "name"}, {Name: "on_failure"}, {Name: "secrets"}},
}

func (p *Pipeline) decodePipelineBlock(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	content, diags := b.Body.Content(pipelineSchema)
	if a := content.Attributes["name"]; a != nil {
		v, _, d := evalString(a, ctx)
		diags = append(diags, d...)
		p.Name = v
	}
	if a := content.Attributes["on_failure"]; a != nil {
		v, ok, d := evalString(a, ctx)
		diags = append(diags, d...)
		if ok {
			switch v {
			case OnFailureStop, OnFailureContinue:
				p.OnFailure = v
			default:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid on_failure",
					Detail: fmt.Sprintf("on_failure must be %q (cancel running modules and start no new ones) or %q (run everything that can run), not %q.%s",
						OnFailureStop, OnFailureContinue, v, didYouMean(v, []string{OnFailureStop, OnFailureContinue})),
					Subject: a.Expr.Range().Ptr(),
				})
			}
		}
	}
	if a := content.Attributes["secrets"]; a != nil {
		v, _, d := evalStringList(a, ctx)
		diags = append(diags, d...)
		p.Secrets = v
	}
	return diags
}

var pluginSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "source"}, {Name: "args"}, {Name: "env"}, {Name: "sha256"}},
}

func (p *Pipeline) decodePlugin(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	name := b.Labels[0]
	var diags hcl.Diagnostics
	if !hclscan.ValidIdentifier(name) {
		diags = append(diags, invalidName("plugin", name, b.LabelRanges[0]))
	}
	if prev, ok := p.Plugins[name]; ok {
		return append(diags, duplicateBlock("plugin", name, b.DefRange, prev.DeclRange))
	}
	pb := &PluginBlock{Name: name, DeclRange: b.DefRange}
	p.Plugins[name] = pb
	content, d := b.Body.Content(pluginSchema)
	diags = append(diags, d...)
	if a := content.Attributes["source"]; a != nil {
		v, ok, d := evalString(a, ctx)
		diags = append(diags, d...)
		if ok {
			if v == "" {
				diags = append(diags, attrError(a, "Empty plugin source", "source must be the path of the plugin binary, relative to the pipeline file's directory. Remove the attribute to look the plugin up by name."))
			} else {
				pb.Source = p.resolvePath(v)
			}
		}
	}
	if a := content.Attributes["args"]; a != nil {
		v, _, d := evalStringList(a, ctx)
		diags = append(diags, d...)
		pb.Args = v
	}
	if a := content.Attributes["env"]; a != nil {
		v, _, d := evalStringMap(a, ctx)
		diags = append(diags, d...)
		pb.Env = v
	}
	if a := content.Attributes["sha256"]; a != nil {
		v, ok, d := evalString(a, ctx)
		diags = append(diags, d...)
		if ok {
			v = strings.ToLower(v)
			if raw, err := hex.DecodeString(v); err != nil || len(raw) != 32 {
				diags = append(diags, attrError(a, "Invalid sha256", fmt.Sprintf("sha256 must be 64 hexadecimal digits (the output of sha256sum), got %q.", v)))
			} else {
				pb.SHA256 = v
			}
		}
	}
	return diags
}

func (p *Pipeline) resolvePath(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	return filepath.Join(p.Dir, path)
}

var limitSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "max", Required: true}},
}

func (p *Pipeline) decodeLimit(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	name := b.Labels[0]
	var diags hcl.Diagnostics
	if !hclscan.ValidIdentifier(name) {
		diags = append(diags, invalidName("limit", name, b.LabelRanges[0]))
	}
	if prev, ok := p.Limits[name]; ok {
		return append(diags, duplicateBlock("limit", name, b.DefRange, prev.DeclRange))
	}
	l := &Limit{Name: name, Max: 1, DeclRange: b.DefRange}
	p.Limits[name] = l
	content, d := b.Body.Content(limitSchema)
	diags = append(diags, d...)
	if a := content.Attributes["max"]; a != nil {
		v, ok, d := evalInt(a, ctx)
		diags = append(diags, d...)
		if ok {
			if v < 1 {
				diags = append(diags, attrError(a, "Invalid limit max", fmt.Sprintf("max is how many modules of the group may run at once; it must be at least 1, not %d.", v)))
			} else {
				l.Max = v
			}
		}
	}
	return diags
}

var distributedSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "capabilities"}, {Name: "heartbeat_interval"}, {Name: "heartbeat_timeout"},
		{Name: "capability_timeout"}, {Name: "coordinator"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "etcd"}},
}

var etcdSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "endpoints"}, {Name: "prefix"}, {Name: "username"}, {Name: "password"},
		{Name: "ca_file"}, {Name: "cert_file"}, {Name: "key_file"},
	},
}

func (p *Pipeline) decodeDistributed(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	d := &Distributed{DeclRange: b.DefRange}
	p.Distributed = d
	content, diags := b.Body.Content(distributedSchema)
	if a := content.Attributes["capabilities"]; a != nil {
		v, _, dd := evalStringList(a, ctx)
		diags = append(diags, dd...)
		d.Capabilities = v
	}
	// Slices, not maps, so that diagnostics come out in a stable order.
	for _, f := range []struct {
		name string
		dst  *time.Duration
	}{
		{"heartbeat_interval", &d.HeartbeatInterval},
		{"heartbeat_timeout", &d.HeartbeatTimeout},
		{"capability_timeout", &d.CapabilityTimeout},
	} {
		name, dst := f.name, f.dst
		if a := content.Attributes[name]; a != nil {
			v, _, dd := evalDuration(a, ctx, false)
			diags = append(diags, dd...)
			*dst = v
		}
	}
	diags = append(diags, checkHeartbeat(d, content.Attributes)...)
	if a := content.Attributes["coordinator"]; a != nil {
		v, ok, dd := evalString(a, ctx)
		diags = append(diags, dd...)
		d.Coordinator = v
		switch strings.ToLower(v) {
		case "etcd":
		case "memory":
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Coordinator for tests",
				Detail:   "The memory coordinator works only inside one process (the host package's tests); host run --instance/--total refuses it. Use \"etcd\", or remove the attribute.",
				Subject:  a.Expr.Range().Ptr(),
			})
		default:
			if ok {
				diags = append(diags, attrError(a, "Unknown coordinator",
					fmt.Sprintf("%q is not a coordinator; a fleet is coordinated through \"etcd\".%s", v, didYouMean(strings.ToLower(v), []string{"etcd", "memory"}))))
			}
		}
	}
	for i, eb := range content.Blocks {
		if i > 0 {
			diags = append(diags, duplicateBlock("etcd", "", eb.DefRange, content.Blocks[0].DefRange))
			continue
		}
		e := &Etcd{DeclRange: eb.DefRange}
		d.Etcd = e
		ec, dd := eb.Body.Content(etcdSchema)
		diags = append(diags, dd...)
		if a := ec.Attributes["endpoints"]; a != nil {
			v, _, dd := evalStringList(a, ctx)
			diags = append(diags, dd...)
			e.Endpoints = v
		}
		for _, f := range []struct {
			name string
			dst  *string
		}{
			{"prefix", &e.Prefix}, {"username", &e.Username}, {"password", &e.Password},
			{"ca_file", &e.CAFile}, {"cert_file", &e.CertFile}, {"key_file", &e.KeyFile},
		} {
			name, dst := f.name, f.dst
			if a := ec.Attributes[name]; a != nil {
				v, _, dd := evalString(a, ctx)
				diags = append(diags, dd...)
				if strings.HasSuffix(name, "_file") && v != "" {
					v = p.resolvePath(v)
				}
				*dst = v
			}
		}
		if (e.CertFile == "") != (e.KeyFile == "") {
			given, missing := "cert_file", "key_file"
			if e.CertFile == "" {
				given, missing = missing, given
			}
			diags = append(diags, attrError(ec.Attributes[given], "Client certificate without its key",
				fmt.Sprintf("%s is set and %s is not: a TLS client certificate for etcd needs both (or neither, with ca_file alone to check the server).", given, missing)))
		}
	}
	return diags
}

// checkHeartbeat refuses a heartbeat interval that is not shorter than
// half the timeout, either of them the default when the file leaves it
// out: a member stops itself one interval before it can be declared lost,
// so a longer interval would leave no room for a single renewal.
func checkHeartbeat(d *Distributed, attrs hcl.Attributes) hcl.Diagnostics {
	interval, timeout := d.HeartbeatInterval, d.HeartbeatTimeout
	if interval <= 0 && attrs["heartbeat_interval"] != nil || timeout <= 0 && attrs["heartbeat_timeout"] != nil {
		return nil // already reported
	}
	iv, tv := interval.String(), timeout.String()
	if interval == 0 {
		interval, iv = coordinator.DefaultHeartbeatInterval, "the default "+coordinator.DefaultHeartbeatInterval.String()
	}
	if timeout == 0 {
		timeout, tv = coordinator.DefaultHeartbeatTimeout, "the default "+coordinator.DefaultHeartbeatTimeout.String()
	}
	if 2*interval < timeout {
		return nil
	}
	a := attrs["heartbeat_timeout"]
	if a == nil {
		a = attrs["heartbeat_interval"]
	}
	return hcl.Diagnostics{attrError(a, "Heartbeat interval not shorter than half the timeout",
		fmt.Sprintf("heartbeat_interval (%s) must be shorter than half of heartbeat_timeout (%s): a member is declared lost when no heartbeat came for heartbeat_timeout, and it stops its own work one heartbeat_interval before that, so it needs several heartbeats within the timeout, such as heartbeat_interval = %q.", iv, tv, suggestInterval(timeout)))}
}

// suggestInterval is a third of timeout, rounded down to a figure people
// write.
func suggestInterval(timeout time.Duration) string {
	third := timeout / 3
	switch {
	case third >= time.Second:
		third = third.Truncate(100 * time.Millisecond)
	case third >= 10*time.Millisecond:
		third = third.Truncate(10 * time.Millisecond)
	default:
		third = max(third.Truncate(time.Millisecond), time.Millisecond)
	}
	return third.String()
}

// The helpers below evaluate one attribute at load time and convert it to
// the Go type the host wants, turning every failure into a diagnostic at
// the attribute's expression.

func attrError(a *hcl.Attribute, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  a.Expr.Range().Ptr(),
		Context:  a.Range.Ptr(),
	}
}

func invalidName(kind, name string, rng hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s name", kind),
		Detail:   fmt.Sprintf("%q is not a valid %s name: a name must start with a letter or underscore and contain only letters, digits, underscores and dashes.", name, kind),
		Subject:  rng.Ptr(),
	}
}

// evalAttr evaluates a and converts the result to ty. A null result is an
// error: load-time attributes must be concrete. ok is false when the value
// is unusable; that includes an unknown value, which only comes from a
// variable or local that already failed and was reported, so it adds no
// diagnostic of its own.
func evalAttr(a *hcl.Attribute, ctx *hcl.EvalContext, ty cty.Type) (v cty.Value, ok bool, diags hcl.Diagnostics) {
	if d := noModuleRefs(a.Expr, a.Name); d != nil {
		return cty.NilVal, false, hcl.Diagnostics{d}
	}
	v, diags = a.Expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, false, diags
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, false, diags
	}
	if v.IsNull() {
		return cty.NilVal, false, append(diags, attrError(a, fmt.Sprintf("Invalid value for %s", a.Name), fmt.Sprintf("%s must not be null; remove the attribute to use its default.", a.Name)))
	}
	cv, err := convertValue(v, ty)
	if err != nil {
		d := attrError(a, fmt.Sprintf("Invalid value for %s", a.Name),
			fmt.Sprintf("%s must be %s, but this is %s.", a.Name, describeType(ty), describeType(v.Type())))
		if i, et, ok := badElement(v, ty); ok {
			// "must be a list of strings, but this is a list" says
			// nothing: name the element, and point at it when written.
			d.Detail = fmt.Sprintf("%s must be %s, but its element %d is %s.", a.Name, describeType(ty), i, describeType(et))
			if tc, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && i < len(tc.Exprs) {
				d.Subject = tc.Exprs[i].Range().Ptr()
			}
		}
		return cty.NilVal, false, append(diags, d)
	}
	return cv, true, diags
}

// badElement finds the first element of a list or tuple v that does not
// convert to the element type of list type ty: its index and type.
func badElement(v cty.Value, ty cty.Type) (int, cty.Type, bool) {
	if !ty.IsListType() || !(v.Type().IsTupleType() || v.Type().IsListType()) || !v.CanIterateElements() {
		return 0, cty.NilType, false
	}
	i := 0
	for it := v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		if _, err := convert.Convert(ev, ty.ElementType()); err != nil {
			return i, ev.Type(), true
		}
	}
	return 0, cty.NilType, false
}

func evalString(a *hcl.Attribute, ctx *hcl.EvalContext) (string, bool, hcl.Diagnostics) {
	v, ok, diags := evalAttr(a, ctx, cty.String)
	if !ok {
		return "", false, diags
	}
	return v.AsString(), true, diags
}

func evalBool(a *hcl.Attribute, ctx *hcl.EvalContext) (bool, bool, hcl.Diagnostics) {
	v, ok, diags := evalAttr(a, ctx, cty.Bool)
	if !ok {
		return false, false, diags
	}
	return v.True(), true, diags
}

func evalInt(a *hcl.Attribute, ctx *hcl.EvalContext) (int, bool, hcl.Diagnostics) {
	v, ok, diags := evalAttr(a, ctx, cty.Number)
	if !ok {
		return 0, false, diags
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, false, append(diags, attrError(a, fmt.Sprintf("Invalid value for %s", a.Name), fmt.Sprintf("%s must be a whole number, not %s.", a.Name, bf.Text('g', -1))))
	}
	i, acc := bf.Int64()
	if acc != big.Exact || i > 1<<31-1 || i < -(1<<31) {
		return 0, false, append(diags, attrError(a, fmt.Sprintf("Invalid value for %s", a.Name), fmt.Sprintf("%s is out of range.", a.Name)))
	}
	return int(i), true, diags
}

func evalStringList(a *hcl.Attribute, ctx *hcl.EvalContext) ([]string, bool, hcl.Diagnostics) {
	v, ok, diags := evalAttr(a, ctx, cty.List(cty.String))
	if !ok {
		return nil, false, diags
	}
	out := make([]string, 0, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		if ev.IsNull() {
			return nil, false, append(diags, attrError(a, fmt.Sprintf("Invalid value for %s", a.Name), fmt.Sprintf("The elements of %s must not be null.", a.Name)))
		}
		out = append(out, ev.AsString())
	}
	return out, true, diags
}

func evalStringMap(a *hcl.Attribute, ctx *hcl.EvalContext) (map[string]string, bool, hcl.Diagnostics) {
	v, ok, diags := evalAttr(a, ctx, cty.Map(cty.String))
	if !ok {
		return nil, false, diags
	}
	out := make(map[string]string, v.LengthInt())
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		if ev.IsNull() {
			return nil, false, append(diags, attrError(a, fmt.Sprintf("Invalid value for %s", a.Name), fmt.Sprintf("The value of %s[%q] must not be null.", a.Name, k.AsString())))
		}
		out[k.AsString()] = ev.AsString()
	}
	return out, true, diags
}

// evalDuration evaluates a Go duration string ("10s", "1m30s").
// durationSyntax is what time.ParseDuration accepts; a string of this
// form that it refuses is too long.
var durationSyntax = regexp.MustCompile(`^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$`)

// maxDuration is the longest time.Duration, in hours.
const maxDuration = "2562047h"

func evalDuration(a *hcl.Attribute, ctx *hcl.EvalContext, allowZero bool) (time.Duration, bool, hcl.Diagnostics) {
	s, ok, diags := evalString(a, ctx)
	if !ok {
		return 0, false, diags
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		detail := fmt.Sprintf("%q is not a duration. Write a number with a unit, such as \"30s\", \"10m\" or \"1h30m\".", s)
		if durationSyntax.MatchString(s) {
			// Well formed, so it overflowed.
			detail = fmt.Sprintf("%q is longer than the longest duration, about %s.", s, maxDuration)
		}
		return 0, false, append(diags, attrError(a, fmt.Sprintf("Invalid duration for %s", a.Name), detail))
	}
	if d < 0 || (d == 0 && !allowZero) {
		want := "greater than zero"
		if allowZero {
			want = "zero or more"
		}
		return 0, false, append(diags, attrError(a, fmt.Sprintf("Invalid duration for %s", a.Name),
			fmt.Sprintf("%s must be %s, not %q.", a.Name, want, s)))
	}
	return d, true, diags
}

// describeType names a type for a person: "a list of strings" rather than
// cty's "list of string".
func describeType(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string"
	case ty == cty.Number:
		return "a number"
	case ty == cty.Bool:
		return "a bool (true or false)"
	case ty == cty.DynamicPseudoType:
		return "any value"
	case ty.IsListType():
		return "a list of " + plural(ty.ElementType())
	case ty.IsSetType():
		return "a set of " + plural(ty.ElementType())
	case ty.IsMapType():
		return "a map of " + plural(ty.ElementType())
	case ty.IsTupleType():
		return "a list"
	case ty.IsObjectType():
		return "an object"
	}
	return ty.FriendlyName()
}

func plural(ty cty.Type) string {
	switch ty {
	case cty.String:
		return "strings"
	case cty.Number:
		return "numbers"
	case cty.Bool:
		return "bools"
	}
	return ty.FriendlyName()
}

// maxSyntaxErrors is how many syntax errors are reported. Past a handful
// the rest are mostly echoes of the first, and a file that is not HCL at
// all (a Makefile, a script) gives hundreds.
const maxSyntaxErrors = 10

// capSyntaxErrors keeps the first maxSyntaxErrors errors of diags and says
// how many were left out.
func capSyntaxErrors(filename string, diags hcl.Diagnostics) hcl.Diagnostics {
	if len(diags.Errs()) <= maxSyntaxErrors {
		return diags
	}
	var out hcl.Diagnostics
	shown := 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			if shown == maxSyntaxErrors {
				continue
			}
			shown++
		}
		out = append(out, d)
	}
	return append(out, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Too many syntax errors",
		Detail:   fmt.Sprintf("%d more syntax errors in %s are not shown. Is it an HCL pipeline file? Fix the first ones above; the rest often follow from them.", len(diags.Errs())-maxSyntaxErrors, filename),
	})
}

// onlyRedefinitions reports whether every error in diags is an attribute
// set twice in one body. The parser keeps the first and the file's
// structure is whole, so loading goes on and the file's other errors are
// reported in the same pass; any other syntax error stops the load, as
// what follows it may be read wrong.
func onlyRedefinitions(diags hcl.Diagnostics) bool {
	for _, d := range diags.Errs() {
		if d.(*hcl.Diagnostic).Summary != "Attribute redefined" {
			return false
		}
	}
	return true
}

// notText returns an error at the first byte that cannot be in an HCL
// file (a NUL, or bytes that are not UTF-8), or nil.
func notText(filename string, src []byte) *hcl.Diagnostic {
	bad := bytes.IndexByte(src, 0)
	if !utf8.Valid(src) {
		for i := 0; i < len(src); {
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size <= 1 {
				if bad < 0 || i < bad {
					bad = i
				}
				break
			}
			i += size
		}
	}
	if bad < 0 {
		return nil
	}
	line := 1 + bytes.Count(src[:bad], []byte("\n"))
	col := 1 + utf8.RuneCount(src[bytes.LastIndexByte(src[:bad], '\n')+1:bad])
	pos := hcl.Pos{Line: line, Column: col, Byte: bad}
	detail := fmt.Sprintf("%s has a byte that cannot be in an HCL file (0x%02x, at byte %d): it looks like a binary, not a pipeline file. Check the path given on the command line.", filename, src[bad], bad)
	if src[bad] != 0 {
		detail = fmt.Sprintf("%s has a byte that is not UTF-8 (0x%02x, at byte %d): a pipeline file is UTF-8 text. Save it as UTF-8 (it may be Latin-1 or another encoding), or check the path given on the command line.", filename, src[bad], bad)
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Not a text file",
		Detail:   detail,
		Subject:  &hcl.Range{Filename: filename, Start: pos, End: pos},
	}
}
