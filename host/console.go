package host

import (
	"io"
	"os"
	"slices"
	"time"

	"golang.org/x/term"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/schedule"
	"github.com/modpipe/modpipe/host/secrets"
	"github.com/modpipe/modpipe/host/ui"
)

// console is what a run prints through: module output and progress in
// the style the environment calls for (host/ui), with the pipeline's
// secrets masked. It is the scheduler's Observer, so the live view and
// the event lines follow the scheduler's decisions.
type console struct {
	*ui.Console
	style ui.Style
	// instance and host are where this console's modules run, for the
	// live view; a distributed master sets instance to -1 and reports the
	// claiming instance with Claimed.
	instance int
	host     string
	// held is where a forced stop finds the console; nil for none.
	held *HeldOutput
	// stderr is the command's standard error, written above the live
	// view while this console shows it; nil for none.
	stderr *Stderr
}

// newConsole returns a plain console on w that masks nothing: for
// callers that have no pipeline yet. Module output is masked before it
// gets here (moduleRunner), and reports in finishRun.
func newConsole(w io.Writer) *console {
	host, _ := os.Hostname()
	return &console{Console: ui.New(ui.Options{Style: ui.StylePlain, Out: w}), style: ui.StylePlain, host: host}
}

// newRunConsole returns the console for running p: live on a terminal
// unless noProgress, a CI's own groups inside a CI, plain otherwise.
func newRunConsole(p *prepared, noProgress bool, total int) *console {
	opts := p.opts
	terminal := false
	width := func() int { return 80 }
	if f, ok := opts.Stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		terminal = true
		fd := int(f.Fd())
		width = func() int {
			if w, _, err := term.GetSize(fd); err == nil && w > 0 {
				return w
			}
			return 80
		}
	}
	style := ui.DetectStyle(opts.Environ, terminal, noProgress)
	host, _ := os.Hostname()
	c := &console{
		Console: ui.New(ui.Options{
			Style:  style,
			Out:    opts.Stdout,
			Masker: pipelineMasker(p.cfg, opts.Environ),
			// moduleRunner masks each module's lines with the same
			// Masker, pieces of a long line together.
			LinesMasked: true,
			Total:       total,
			Width:       width,
			// Module output and events reach the log within a tenth of
			// a second, in one write per batch instead of one per line.
			Batch:     100 * time.Millisecond,
			Workspace: envMap(opts.Environ)["GITHUB_WORKSPACE"],
		}),
		style: style,
		host:  host,
		held:  opts.HeldOutput,
	}
	c.held.add(c)
	if s, ok := opts.Stderr.(*Stderr); ok && style == ui.StyleLive {
		c.stderr = s
		s.attach(c.Console)
	}
	return c
}

// Close ends the console (see ui.Console.Close); the run's HeldOutput
// forgets it, and standard error is written straight again.
func (c *console) Close() error {
	c.held.remove(c)
	c.stderr.detach(c.Console)
	return c.Console.Close()
}

// TaskStarted implements schedule.Observer. On a distributed master it
// tells that the module went to the fleet; where the module runs here,
// the moduleRunner says it started once it knows the module is not
// skipped (requires, run_if), so a skipped module never shows a start.
func (c *console) TaskStarted(t *schedule.Task, attempt int) {
	if c.instance < 0 {
		c.Started(t.ID, attempt, c.instance, c.host)
	}
}

// TaskRetrying implements schedule.Observer.
func (c *console) TaskRetrying(t *schedule.Task, attempt int, env coordinator.Envelope, wait time.Duration) {
	c.Retrying(t.ID, attempt, env, wait)
}

// TaskFinished implements schedule.Observer.
func (c *console) TaskFinished(t *schedule.Task, env coordinator.Envelope) {
	c.Finished(env)
}

// pipelineMasker collects the values to hide (R7.4): every variable
// marked sensitive (each string or number inside it), every environment
// variable the pipeline block names in secrets, and the etcd password.
func pipelineMasker(cfg *config.Pipeline, environ []string) *secrets.Masker {
	if cfg == nil {
		return nil
	}
	values := slices.Clone(cfg.SensitiveInputs())
	for _, v := range cfg.Variables {
		if v.Sensitive {
			values = append(values, secrets.CtyValues(v.Value)...)
		}
	}
	return secrets.New(append(values, environmentSecrets(cfg, environ)...)...)
}

// environmentMasker masks the values of the environment variables the
// pipeline block names in secrets, as this instance's environment has
// them, and its etcd password. In a fleet these are what the other instances may not know (a
// sensitive variable's value comes from the master, so every instance
// masks it), so an instance masks the envelopes it publishes with it.
func environmentMasker(cfg *config.Pipeline, environ []string) *secrets.Masker {
	if cfg == nil {
		return nil
	}
	return secrets.New(environmentSecrets(cfg, environ)...)
}

// environmentSecrets are the values of the environment variables named
// in secrets, and the etcd password: a credential whether or not the
// file lists it (it usually comes from env()), and one that each
// instance evaluates from its own environment.
func environmentSecrets(cfg *config.Pipeline, environ []string) []string {
	env := envMap(environ)
	values := make([]string, 0, len(cfg.Secrets)+1)
	for _, name := range cfg.Secrets {
		values = append(values, env[name])
	}
	if d := cfg.Distributed; d != nil && d.Etcd != nil {
		values = append(values, d.Etcd.Password)
	}
	return values
}
