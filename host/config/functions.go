package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// functions returns the functions every expression of the file may call:
// the cty standard library under the names Terraform users know, plus
// env() and file(), which are bound to this load's environment and
// directory rather than the process's.
func functions(dir string, environ map[string]string) map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"can":             tryfunc.CanFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"endswith":        endsWithFunc,
		"env":             envFunc(environ),
		"file":            fileFunc(dir),
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"index":           indexFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          lengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"regex_replace":   stdlib.RegexReplaceFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"startswith":      startsWithFunc,
		"strlen":          stdlib.StrlenFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          makeToFunc(cty.Bool),
		"tolist":          makeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":           makeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":        makeToFunc(cty.Number),
		"toset":           makeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":        makeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"try":             tryfunc.TryFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

// envFunc is env("NAME"): the variable's value, or "" when it is unset.
func envFunc(environ map[string]string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or an empty string when it is not set.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		RefineResult: func(b *cty.RefinementBuilder) *cty.RefinementBuilder {
			return b.NotNull()
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.StringVal(environ[args[0].AsString()]), nil
		},
	})
}

// fileFunc is file("path"): the contents of a UTF-8 text file, relative to
// the pipeline file's directory.
func fileFunc(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Reads a UTF-8 text file, relative to the pipeline file's directory.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := args[0].AsString()
			if !filepath.IsAbs(path) {
				path = filepath.Join(dir, path)
			}
			data, err := readTextFile(path)
			if err != nil {
				return cty.NilVal, function.NewArgError(0, err)
			}
			return cty.StringVal(string(data)), nil
		},
	})
}

// maxFileSize is the most file() reads: a text file a pipeline quotes is
// small, and a larger one is most often the wrong path (a build output, a
// disk image) that would hold the whole load in memory.
const maxFileSize = 64 << 20

// readTextFile reads the regular file at path for file(). What is not a
// regular file is refused before it is opened: opening a named pipe
// blocks until a writer comes, and a device such as /dev/zero never ends.
func readTextFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf(missingFilePrefix+"%s; paths are relative to the pipeline file's directory", path)
		}
		return nil, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	if what := notRegular(info.Mode()); what != "" {
		return nil, fmt.Errorf("%s is %s, not a regular file; file() reads only regular files", path, what)
	}
	tooLarge := func() error {
		return fmt.Errorf("%s is larger than file()'s limit of %d MiB", path, maxFileSize>>20)
	}
	if info.Size() > maxFileSize {
		return nil, tooLarge()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	defer f.Close()
	// The limit holds for a file that grew since the stat, and for one
	// whose size says nothing (a /proc file says 0).
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, unwrapPath(err))
	}
	if len(data) > maxFileSize {
		return nil, tooLarge()
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("the file at %s is not valid UTF-8 text", path)
	}
	return data, nil
}

// notRegular names the kind of file mode is ("a directory", "a named
// pipe (FIFO)", ...), or returns "" for a regular file.
func notRegular(mode os.FileMode) string {
	switch {
	case mode.IsRegular():
		return ""
	case mode.IsDir():
		return "a directory"
	case mode&os.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case mode&os.ModeCharDevice != 0:
		return "a character device"
	case mode&os.ModeDevice != 0:
		return "a block device"
	case mode&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// unwrapPath drops an *fs.PathError's operation and path, which the
// caller's message already names.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// missingFilePrefix starts file()'s error for a path where there is no
// file. function.ArgError does not unwrap, so missingFileOnly knows the
// error by its text, which this package alone writes.
const missingFilePrefix = "no file exists at "

// missingFileOnly reports whether every error in diags is file() of a path
// where there is no file (see Module.FileMayComeLater).
func missingFileOnly(diags hcl.Diagnostics) bool {
	errs := diags.Errs()
	for _, e := range errs {
		d, ok := e.(*hcl.Diagnostic)
		if !ok {
			return false
		}
		extra, ok := hcl.DiagnosticExtra[hclsyntax.FunctionCallDiagExtra](d)
		if !ok || extra.CalledFunctionName() != "file" || extra.FunctionCallError() == nil {
			return false
		}
		if !strings.HasPrefix(extra.FunctionCallError().Error(), missingFilePrefix) {
			return false
		}
	}
	return len(errs) > 0
}

// lengthFunc is stdlib's length that also counts an object's attributes,
// as Terraform's does: a matrix module's results (module.NAME) are an
// object from instance key to result, and length(module.NAME) must work.
var lengthFunc = function.New(&function.Spec{
	Description: stdlib.LengthFunc.Description(),
	Params: []function.Parameter{{
		Name:             "collection",
		Type:             cty.DynamicPseudoType,
		AllowDynamicType: true,
		AllowUnknown:     true,
	}},
	Type: func(args []cty.Value) (cty.Type, error) {
		switch ty := args[0].Type(); {
		case ty.IsObjectType():
			return cty.Number, nil
		case ty == cty.String:
			return cty.NilType, function.NewArgErrorf(0, "length counts the elements of a list, set, map, tuple or object; for the length of a string use strlen")
		}
		return stdlib.LengthFunc.ReturnTypeForValues(args)
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		if ty := args[0].Type(); ty.IsObjectType() {
			// An object's attributes are fixed by its type, so its
			// length is known even when the value is not.
			return cty.NumberIntVal(int64(len(ty.AttributeTypes()))), nil
		}
		return stdlib.LengthFunc.Call(args)
	},
})

// indexFunc is index(collection, key): the element at key, as
// collection[key] is. stdlib's takes lists, maps and tuples only; this one
// takes an object too (a { k = "v" } literal, a matrix module's results,
// module.NAME), and says which positions or keys there are when key is
// not one of them.
var indexFunc = function.New(&function.Spec{
	Description: "Returns the element of a collection at a key: a position in a list or tuple, a key of a map or object.",
	Params: []function.Parameter{
		{Name: "collection", Type: cty.DynamicPseudoType},
		{Name: "key", Type: cty.DynamicPseudoType},
	},
	Type: func(args []cty.Value) (cty.Type, error) {
		coll, key := args[0], args[1]
		if ty := coll.Type(); ty.IsObjectType() {
			if !key.IsKnown() {
				return cty.DynamicPseudoType, nil
			}
			name, err := objectKey(ty, key)
			if err != nil {
				return cty.NilType, function.NewArgError(1, err)
			}
			return ty.AttributeType(name), nil
		}
		if err := positionInRange(coll, key); err != nil {
			return cty.NilType, function.NewArgError(1, err)
		}
		return stdlib.IndexFunc.ReturnTypeForValues(args)
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		coll, key := args[0], args[1]
		if ty := coll.Type(); ty.IsObjectType() {
			name, err := objectKey(ty, key)
			if err != nil {
				return cty.NilVal, function.NewArgError(1, err)
			}
			return coll.GetAttr(name), nil
		}
		return stdlib.IndexFunc.Call(args)
	},
})

// objectKey is key as the name of one of ty's attributes.
func objectKey(ty cty.Type, key cty.Value) (string, error) {
	k, err := convert.Convert(key, cty.String)
	if err != nil || k.IsNull() {
		return "", fmt.Errorf("the key of an object must be a string")
	}
	name := k.AsString()
	if !ty.HasAttribute(name) {
		names := make([]string, 0, len(ty.AttributeTypes()))
		for n := range ty.AttributeTypes() {
			names = append(names, strconv.Quote(n))
		}
		sort.Strings(names)
		if len(names) == 0 {
			return "", fmt.Errorf("the object has no keys, so none is %q", name)
		}
		return "", fmt.Errorf("the object has no key %q; its keys are %s", name, strings.Join(names, ", "))
	}
	return name, nil
}

// positionInRange checks a known position in a known list or tuple, with
// an error that says which positions there are (stdlib's says "between 0
// and LENGTH inclusive", one too many).
func positionInRange(coll, key cty.Value) error {
	ty := coll.Type()
	if !(ty.IsListType() || ty.IsTupleType()) || !key.IsKnown() || key.IsNull() || !coll.IsKnown() || coll.IsNull() {
		return nil
	}
	k, err := convert.Convert(key, cty.Number)
	if err != nil {
		return nil // stdlib's own error
	}
	i, acc := k.AsBigFloat().Int64()
	n := coll.LengthInt()
	if acc != big.Exact {
		return fmt.Errorf("a position must be a whole number, not %s", k.AsBigFloat().Text('f', -1))
	}
	if i < 0 || i >= int64(n) {
		if n == 0 {
			return fmt.Errorf("position %d is out of range: the collection is empty", i)
		}
		return fmt.Errorf("position %d is out of range: the collection has %d element%s, at positions 0 to %d", i, n, map[bool]string{true: "", false: "s"}[n == 1], n-1)
	}
	return nil
}

var startsWithFunc = function.New(&function.Spec{
	Description: "Reports whether a string starts with a prefix.",
	Params: []function.Parameter{
		{Name: "str", Type: cty.String},
		{Name: "prefix", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

var endsWithFunc = function.New(&function.Spec{
	Description: "Reports whether a string ends with a suffix.",
	Params: []function.Parameter{
		{Name: "str", Type: cty.String},
		{Name: "suffix", Type: cty.String},
	},
	Type: function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasSuffix(args[0].AsString(), args[1].AsString())), nil
	},
})

// makeToFunc builds the Terraform-style conversion functions (tostring,
// tonumber, ...): an explicit conversion to want, with an error that
// names both types when it is impossible.
func makeToFunc(want cty.Type) function.Function {
	return function.New(&function.Spec{
		Description: fmt.Sprintf("Converts its argument to %s.", want.FriendlyNameForConstraint()),
		Params: []function.Parameter{{
			Name:             "v",
			Type:             cty.DynamicPseudoType,
			AllowNull:        true,
			AllowDynamicType: true,
		}},
		Type: func(args []cty.Value) (cty.Type, error) {
			got := args[0].Type()
			if got.Equals(want) {
				return got, nil
			}
			conv := convert.GetConversionUnsafe(got, want)
			if conv == nil {
				return cty.NilType, function.NewArgErrorf(0, "cannot convert %s to %s", got.FriendlyName(), want.FriendlyNameForConstraint())
			}
			// The result's concrete type is what the conversion of an
			// unknown value of the argument's type yields.
			out, err := conv(cty.UnknownVal(got))
			if err != nil {
				return cty.NilType, function.NewArgError(0, err)
			}
			return out.Type(), nil
		},
		Impl: func(args []cty.Value, retType cty.Type) (cty.Value, error) {
			v, err := convert.Convert(args[0], retType)
			if err != nil {
				return cty.NilVal, function.NewArgErrorf(0, "cannot convert %s to %s: %s", args[0].Type().FriendlyName(), want.FriendlyNameForConstraint(), err)
			}
			return v, nil
		},
	})
}
