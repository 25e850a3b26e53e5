// Package schema describes the configuration a plugin's module kind
// accepts, in host terms (cty types), independent of the wire protocol
// that carried it and of the HCL decoder that applies it.
package schema

import "github.com/zclconf/go-cty/cty"

// Kind is one module kind a plugin offers.
type Kind struct {
	// Name is the kind's name within its plugin, e.g. "exec".
	Name string
	// Default marks the kind used when a module names only the plugin.
	Default bool
	// ResultType is the versioned type name of the kind's result value,
	// e.g. "shell.exec/v1".
	ResultType string
	// Result is the type of the kind's result values, as the plugin
	// declared it (ModuleKind.result_schema); cty.NilType when it did
	// not, and then references to the results are not checked.
	Result     cty.Type
	Doc        string
	Attributes []Attribute
}

// Attribute is one configuration attribute of a module kind.
type Attribute struct {
	Name     string
	Type     cty.Type
	Required bool
	Doc      string
}

// Attribute returns the attribute named name, or false.
func (k *Kind) Attribute(name string) (Attribute, bool) {
	for _, a := range k.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}
