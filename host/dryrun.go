package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
)

// DryRun prints the plan of a run without running a module (`host run
// --dry-run`): the waves of modules in the order they can start, and
// which modules this instance would skip and why, as far as that can be
// known before anything has run. It checks the file as validate does
// first (the plugins start, to check every module against its kind), so
// a plan is printed only for a file that run would accept.
func DryRun(ctx context.Context, opts Options) error {
	opts.defaults()
	opts.readSource()
	pre := prestartPlugins(ctx, opts)
	l, err := loadChecking(ctx, opts, pre)
	if err != nil {
		pre.close()
		return err
	}
	p, err := prepareFrom(ctx, l, nil, pre)
	if err != nil {
		return err
	}
	p.close()
	return writeMasked(opts.Stdout, pipelineMasker(l.cfg, opts.Environ), func(w io.Writer) error { return writePlan(w, l) })
}

// planReason says why a node would be skipped, or "" when it would run.
// Conditions that read module results cannot be known yet.
func planReason(l *loaded, n *graph.Node, skipped map[string]string) (reason string, later bool) {
	m := n.Module
	// In the order the run decides: the scheduler skips a module whose
	// dependencies were skipped before the executor looks at what it
	// requires, so the plan gives the reason the run will.
	if !m.AlwaysRun {
		for _, d := range n.Deps {
			all := true
			for _, a := range d.Addresses {
				if _, ok := skipped[a]; !ok {
					all = false
					break
				}
			}
			if all {
				name := d.Module // as the run names it: the instance, when it is one
				if len(d.Addresses) == 1 {
					name = d.Addresses[0]
				}
				return fmt.Sprintf("dependency %s would be skipped", name), false
			}
		}
	}
	if missing := coordinator.MissingCapabilities(n.Requires, l.facts.Capabilities); len(missing) > 0 {
		return capabilitySkipReason(missing, l.facts.Capabilities), false
	}
	if m.RunIf == nil {
		return "", false
	}
	if len(m.References) > 0 {
		// run_if or the body reads results: decided when the module is ready.
		return "", true
	}
	scope := config.Scope{Facts: l.facts}
	if n.Instance != nil {
		scope.Matrix = n.Instance.Values
	}
	ok, diags := m.EvalRunIf(l.cfg.EvalContext(scope))
	switch {
	case diags.HasErrors():
		return "run_if cannot be evaluated: " + hclSummary(diags), false
	case !ok:
		return "run_if is false: " + config.RunIfSource(m), false
	}
	return "", false
}

func hclSummary(diags hcl.Diagnostics) string {
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			return d.Summary + ": " + d.Detail
		}
	}
	return diags.Error()
}

func writePlan(w io.Writer, l *loaded) error {
	waves := l.graph.Waves()
	name := l.cfg.Name
	if name == "" {
		name = l.opts.File
	}
	fmt.Fprintf(w, "Plan for %s: %s in %s, up to %d at once on this instance (capabilities: %s)\n",
		name, count(len(l.graph.Nodes()), "module"), count(len(waves), "wave"), l.opts.Parallelism, strings.Join(l.facts.Capabilities, ", "))
	skipped := map[string]string{}
	var later []string
	// tabwriter pads every cell but a line's last, so rows without a note
	// would end in spaces: write through a buffer and trim them.
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	for i, wave := range waves {
		fmt.Fprintf(tw, "\nwave %d\n", i+1)
		for _, n := range wave {
			reason, decidedLater := planReason(l, n, skipped)
			note := ""
			switch {
			case reason != "":
				skipped[n.Address] = reason
				note = "skip: " + reason
			case decidedLater:
				later = append(later, n.Address)
				note = "run_if decided when ready"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", n.Address, n.Module.KindLabel(), meta(n.Module), note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\n%d would run, %d would be skipped", len(l.graph.Nodes())-len(skipped)-len(later), len(skipped))
	if len(later) > 0 {
		fmt.Fprintf(w, ", %d decided when ready (%s)", len(later), strings.Join(later, ", "))
	}
	fmt.Fprintln(w, "; nothing was run (--dry-run).")
	return nil
}

// meta lists the meta-arguments that shape scheduling, for the plan.
func meta(m *config.Module) string {
	var parts []string
	if m.Priority != 0 {
		parts = append(parts, fmt.Sprintf("priority %d", m.Priority))
	}
	if m.Exclusive {
		parts = append(parts, "alone")
	}
	if len(m.NotInParallel) > 0 {
		parts = append(parts, "not_in_parallel "+strings.Join(m.NotInParallel, ","))
	}
	if len(m.Limits) > 0 {
		parts = append(parts, "limits "+strings.Join(m.Limits, ","))
	}
	if m.Timeout > 0 {
		parts = append(parts, "timeout "+m.Timeout.String())
	}
	if m.Retry.Attempts > 1 {
		parts = append(parts, fmt.Sprintf("attempts %d", m.Retry.Attempts))
	}
	if m.AlwaysRun {
		parts = append(parts, "always_run")
	}
	if m.IgnoreFailure {
		parts = append(parts, "ignore_failure")
	}
	if m.PinToMaster {
		parts = append(parts, "pin_to_master")
	}
	if m.Category != "" {
		parts = append(parts, "category "+m.Category)
	}
	return strings.Join(parts, "; ")
}
