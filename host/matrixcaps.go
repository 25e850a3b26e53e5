package host

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
)

// capabilitySkipPrefix begins the skip reason of a module whose required
// capabilities this instance does not offer (capabilitySkipReason).
const capabilitySkipPrefix = "requires ["

// capabilitySkipReason is the skip reason of a module that requires the
// capabilities missing, which this instance, offering has, lacks.
func capabilitySkipReason(missing, has []string) string {
	return fmt.Sprintf("%s%s] which this instance does not have (has: %s)", capabilitySkipPrefix, strings.Join(missing, ", "), strings.Join(has, ", "))
}

// matrixOfValuesHint is the fix for a matrix = [...] written to vary a
// value (a Go version) rather than the machine it runs on.
const matrixOfValuesHint = "for a matrix of values rather than of targets, write matrix { go = [...] } (any axis name but target; its values are then matrix.go)"

// knownTargets are the operating systems and architectures a matrix =
// [...] of targets names (Go's, and macos): a fleet runs each on an
// instance of that kind, so one that this instance is not is expected.
var knownTargets = map[string]bool{
	"aix": true, "android": true, "darwin": true, "dragonfly": true, "freebsd": true, "hurd": true, "illumos": true,
	"ios": true, "js": true, "linux": true, "macos": true, "netbsd": true, "openbsd": true, "plan9": true,
	"solaris": true, "wasip1": true, "windows": true, "zos": true,
	"386": true, "amd64": true, "arm": true, "arm64": true, "loong64": true, "mips": true, "mipsle": true,
	"mips64": true, "mips64le": true, "ppc64": true, "ppc64le": true, "riscv64": true, "s390x": true,
	"sparc64": true, "wasm": true,
}

// matrixCapabilityWarnings warns of the modules whose matrix = [...]
// lists values that this instance does not offer as capabilities and
// that name no operating system or architecture: most often a matrix of
// versions written as a list, whose instances would all be skipped and
// leave a green run that ran nothing. It is for a run on this machine
// alone (and validate, which says "this instance"): in a fleet, other
// instances may offer them.
func (l *loaded) matrixCapabilityWarnings() hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, m := range l.modules() {
		mx := m.Matrix
		if mx == nil || !mx.List {
			continue
		}
		var missing, instances []string
		for _, n := range l.graph.Instances(m.Name) {
			t := n.Instance.Values[config.MatrixTargetAxis]
			if knownTargets[strings.ToLower(t)] || len(coordinator.MissingCapabilities([]string{t}, l.facts.Capabilities)) == 0 {
				continue
			}
			missing = append(missing, strconv.Quote(t))
			instances = append(instances, n.Address)
		}
		if len(missing) == 0 {
			continue
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Matrix values this instance does not offer",
			Detail: fmt.Sprintf("Each value of matrix = [...] is a target: a capability the instance that runs it must offer. This instance does not offer %s (it has: %s), so %s would be skipped here, running nothing. Those values name no OS or architecture: %s. If other instances of a fleet offer them, this is expected (validate --capability NAME checks as such an instance).",
				strings.Join(missing, ", "), strings.Join(l.facts.Capabilities, ", "), strings.Join(instances, ", "), matrixOfValuesHint),
			Subject: mx.Range.Ptr(),
		})
	}
	return diags
}

// capabilitySkipsLine is the summary's line about the modules skipped
// because this instance lacks capabilities they require, or "" when none
// was: a run that skipped its work is green, and the table alone does not
// make that stand out.
func capabilitySkipsLine(p *prepared, envs []coordinator.Envelope) string {
	n := 0
	var missing []string
	fromMatrix := false
	for _, e := range envs {
		if e.Status != coordinator.StatusSkipped || !strings.HasPrefix(e.SkipReason, capabilitySkipPrefix) {
			continue
		}
		n++
		node, ok := p.graph.Node(e.Module)
		if !ok {
			continue
		}
		for _, c := range coordinator.MissingCapabilities(node.Requires, p.facts.Capabilities) {
			if !slices.Contains(missing, c) {
				missing = append(missing, c)
			}
			// An OS or an architecture is what a list matrix is for;
			// another value is most often a version meant as a value.
			if mx := node.Module.Matrix; mx != nil && mx.List && !knownTargets[strings.ToLower(c)] && strings.EqualFold(node.Instance.Values[config.MatrixTargetAxis], c) {
				fromMatrix = true
			}
		}
	}
	if n == 0 {
		return ""
	}
	line := fmt.Sprintf("%s %s skipped: this instance does not offer the capabilities %s (%s)",
		count(n, "module"), verbs(n, "was", "were"), verbs(n, "it requires", "they require"), strings.Join(missing, ", "))
	if fromMatrix {
		line += "; each value of matrix = [...] is one, and " + matrixOfValuesHint
	}
	return line + "."
}

// verbs is one when n is 1, else many.
func verbs(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
