package ui

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clipperhouse/displaywidth"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/secrets"
)

// Defaults for Options.
const (
	DefaultRefresh    = 250 * time.Millisecond
	DefaultMaxRunning = 3
	// DefaultMaxBuffered bounds the output one module's group holds in the
	// CI styles; past it the lines between the first and the last are
	// counted and dropped, so a module that prints without end cannot
	// exhaust the host's memory.
	DefaultMaxBuffered = 8 << 20
)

// Options configure a Console.
type Options struct {
	Style Style
	// Out receives everything; writes to it are serialised.
	Out io.Writer
	// Masker hides secrets in everything written; nil masks nothing.
	Masker *secrets.Masker
	// Total is the number of modules in the run, for "done/total".
	Total int
	// Width returns the terminal's width for the live view; nil means 80.
	Width func() int
	// Now is the clock for elapsed times; nil means time.Now.
	Now func() time.Time
	// Refresh is how often the live view redraws; 0 means DefaultRefresh.
	// A negative value never redraws on a timer (tests redraw on events).
	Refresh time.Duration
	// MaxRunning is how many running modules the live view lists; 0 means
	// DefaultMaxRunning.
	MaxRunning int
	// MaxBuffered is the byte limit of one module's buffered output in the
	// CI styles; 0 means DefaultMaxBuffered.
	MaxBuffered int
	// Batch, when positive, holds what the styles other than the live one
	// print and writes it at most this often, and at Close: a run of
	// thousands of short modules otherwise made two write calls per
	// module, on the scheduler's path. Zero writes every line at once.
	Batch time.Duration
	// LinesMasked says that the text given to Line is masked already:
	// the host masks each module's lines as they arrive, the pieces of
	// a line too long for one message together, which the console, given
	// a piece at a time, could not. The console then masks only what it
	// puts in front of such a line (a module's prefix), instead of every
	// line a second time.
	LinesMasked bool
	// Workspace is GitHub Actions' GITHUB_WORKSPACE: annotation paths
	// inside it are given relative to it, as GitHub needs them to show
	// an annotation on the file. Empty leaves paths as they are.
	Workspace string
}

// Console prints a run's output and progress in one Style. Its methods
// are safe for concurrent use: module output arrives from the plugins'
// goroutines while the scheduler reports events from its own.
type Console struct {
	opts Options
	// locate, when set (SetLocate), says where a module handed to the
	// fleet runs.
	locate func(module string) (instance int, host string, ok bool)

	mu      sync.Mutex
	out     *secrets.LineWriter
	batch   *batchWriter // under out; holds output while batching
	closed  bool
	running map[string]*running
	done    int
	failed  int
	ignored int // failures that ignore_failure kept from failing the run
	started time.Time
	// drawn is how many live-view lines are on the screen below the output.
	drawn int
	// drawnAt is when the live view was last drawn.
	drawnAt time.Time
	// groups buffers each running module's output in the CI styles.
	groups map[string]*group
	// sections counts GitLab section names, which must be unique.
	sections int
	// annotations keeps the GitHub annotations within what GitHub shows.
	annotations annotations
	// prefixes caches, for LinesMasked, whether a secret may start in
	// each prefix put in front of a module's line (Masker.MayStartIn).
	prefixes map[string]bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// running is a module the live view shows.
type running struct {
	module   string
	attempt  int
	instance int
	host     string
	since    time.Time
	// fleet: a master handed the module to the fleet; instance is the
	// one that holds its claim, as last located, or -1.
	fleet bool
}

// New returns a Console. In the live style it starts redrawing on a
// timer; Close stops it. In the GitHub style it registers every secret
// with ::add-mask:: first, so GitHub hides them too in whatever it shows.
func New(opts Options) *Console {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Width == nil {
		opts.Width = func() int { return 80 }
	}
	if opts.Refresh == 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = DefaultMaxRunning
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	c := &Console{
		opts:    opts,
		running: map[string]*running{},
		groups:  map[string]*group{},
		started: opts.Now(),
		stop:    make(chan struct{}),
	}
	hold := opts.Batch > 0 && opts.Style != StyleLive
	c.batch = &batchWriter{w: opts.Out, hold: hold, flushing: hold, max: defaultMaxQueued, room: sync.NewCond(&c.mu), kick: make(chan struct{}, 1)}
	c.out = secrets.NewLineWriter(c.batch, opts.Masker)
	if opts.Style == StyleGitHub {
		// Written unmasked, straight to Out: this is how GitHub learns
		// what to mask, and GitHub hides the command line itself.
		for _, v := range opts.Masker.Values() {
			if strings.ContainsAny(v, "\r\n") {
				continue // its lines are registered one by one
			}
			fmt.Fprintf(opts.Out, "::add-mask::%s\n", escapeData(v))
		}
	}
	if opts.Style == StyleLive && opts.Refresh > 0 {
		c.wg.Add(1)
		go c.tick()
	}
	if c.batch.hold {
		c.wg.Add(1)
		go c.flushEvery(opts.Batch)
	}
	return c
}

// waitRoom waits, when the console's queue of output is full, for its
// flusher to take it: so that a reader that stops reading, or output
// that comes faster than it can be written, holds the host's memory to
// what the queue takes. The wait lets go of mu: every method that writes
// calls it first, before it changes anything, and no write waits, so
// what a method writes stays together. Called with mu held.
func (c *Console) waitRoom() { c.batch.waitRoom() }

// flushEvery writes the held output every d, and when a write waits for
// room, until Close, which writes the rest and stops holding. It writes
// outside mu, so the console goes on taking lines and events (the
// scheduler's among them) while a finished module's group is written.
func (c *Console) flushEvery(d time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		case <-c.batch.kick:
		}
		c.mu.Lock()
		bufs := c.batch.queue.take()
		c.batch.room.Broadcast()
		c.mu.Unlock()
		err := writeAll(c.opts.Out, bufs)
		if err != nil {
			c.mu.Lock()
			if c.batch.err == nil {
				c.batch.err = err
			}
			c.mu.Unlock()
		}
	}
}

// tick redraws the live view so elapsed times move while nothing else
// happens. Close stops it and waits.
func (c *Console) tick() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.relocate()
			c.mu.Lock()
			if !c.closed {
				c.emit(nil)
			}
			c.mu.Unlock()
		}
	}
}

// relocate asks locate where the fleet modules the view lists are, and
// keeps the answers for it. It calls locate without holding mu: locate
// takes the coordinator session's lock, which the session holds while it
// logs, and a log line reaches the console (WriteAside) for mu.
func (c *Console) relocate() {
	c.mu.Lock()
	locate := c.locate
	var listed []*running
	if locate != nil && !c.closed {
		listed = c.listedLocked()
	}
	var mods []string
	for _, r := range listed {
		if r.fleet {
			mods = append(mods, r.module)
		}
	}
	c.mu.Unlock()
	if len(mods) == 0 {
		return
	}
	type place struct {
		instance int
		host     string
	}
	found := make(map[string]place, len(mods))
	for _, m := range mods {
		if i, h, ok := locate(m); ok {
			found[m] = place{i, h}
		} else {
			found[m] = place{-1, ""}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, p := range found {
		if r := c.running[m]; r != nil && r.fleet {
			r.instance, r.host = p.instance, p.host
		}
	}
}

// listedLocked returns the running modules the live view lists, in its
// order: the longest running first. Called with mu held.
func (c *Console) listedLocked() []*running {
	rs := make([]*running, 0, len(c.running))
	for _, r := range c.running {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].since.Equal(rs[j].since) {
			return rs[i].since.Before(rs[j].since)
		}
		return rs[i].module < rs[j].module
	})
	if len(rs) > c.opts.MaxRunning {
		rs = rs[:c.opts.MaxRunning]
	}
	return rs
}

// Started tells the console attempt of module started on instance
// (running on host). instance < 0 means not known yet: a distributed
// master enqueued the module and no worker has claimed it; Claimed tells
// the instance later.
func (c *Console) Started(module string, attempt, instance int, host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	c.running[module] = &running{module: module, attempt: attempt, instance: instance, host: host, since: c.opts.Now(), fleet: instance < 0}
	if _, ok := c.groups[module]; !ok && c.buffers() {
		c.groups[module] = &group{}
	}
	switch c.opts.Style {
	case StylePlain, StyleGitHub, StyleGitLab:
		if instance < 0 {
			// A master only hands the module to the fleet; Claimed says
			// where it runs once a worker takes it.
			c.emit([]string{fmt.Sprintf("⋯ %s queued for the fleet%s", module, attemptNote(attempt))})
			break
		}
		c.emit([]string{fmt.Sprintf("▶ %s started%s%s", module, attemptNote(attempt), where(instance, host))})
	case StyleLive:
		c.emit(nil)
	}
	// Buildkite has no end marker: a line here would land in the group
	// of whichever module finished last.
}

// SetLocate gives a fleet master's console where the modules it handed
// to the fleet are: f returns the instance that holds a module's claim,
// if one does. The live view asks it for the modules it lists, on its
// timer, and shows a module no instance holds as queued (waiting,
// perhaps, for an instance with the capabilities it requires) rather
// than running.
func (c *Console) SetLocate(f func(module string) (instance int, host string, ok bool)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.locate = f
}

// Claimed tells the console which instance runs module (distributed runs).
func (c *Console) Claimed(module string, instance int, host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	if r, ok := c.running[module]; ok {
		r.instance, r.host = instance, host
	}
	if c.opts.Style == StylePlain {
		c.emit([]string{fmt.Sprintf("▶ %s claimed%s", module, where(instance, host))})
	}
}

// Retrying tells the console attempt of module ended with env and the
// module will run again after wait.
func (c *Console) Retrying(module string, attempt int, env coordinator.Envelope, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	delete(c.running, module)
	line := fmt.Sprintf("↻ %s attempt %d %s%s, retrying in %s", module, attempt, env.Status, errorNote(env), report.FormatDuration(wait))
	if g := c.groups[module]; g != nil {
		// The retry belongs with the module's output, in its group,
		// which holds its lines masked.
		g.add("", c.opts.Masker.String(line), c.opts.MaxBuffered)
		return
	}
	c.emit([]string{line})
}

// Finished tells the console a module ended with env, its final envelope.
func (c *Console) Finished(env coordinator.Envelope) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	c.finished(env, true, false)
}

// AttemptFinished tells the console an attempt that a fleet worker ran
// ended with env. It is printed as Finished prints a module's end, output
// and all, but without an annotation: the master annotates the run, once
// for each module that failed it, and a worker's for every attempt would
// repeat that, or annotate a failure a retry then made good. retried
// says that the attempt failed and the module has attempts left, which
// the line says instead of a failure; the attempt is not counted done.
func (c *Console) AttemptFinished(env coordinator.Envelope, retried bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	c.finished(env, false, retried)
}

// finished prints the end of env's module, or of its attempt when
// retried, with a GitHub annotation for a failure when annotate. Called
// with mu held.
func (c *Console) finished(env coordinator.Envelope, annotate, retried bool) {
	// A module the master handed to the fleet ran somewhere the line
	// should name, as the summary does.
	at := ""
	if r := c.running[env.Module]; r != nil && r.fleet && env.Attempts > 0 && env.Host != "" {
		at = where(env.Instance, env.Host)
	}
	delete(c.running, env.Module)
	status := string(env.Status)
	if env.IgnoredFailure {
		status += " (ignored)"
	}
	head := fmt.Sprintf("%s %s %s%s%s%s", statusMark(env.Status), env.Module, status, at, durationNote(env), errorNote(env))
	if env.Status == coordinator.StatusSkipped && env.SkipReason != "" {
		head = fmt.Sprintf("%s %s skipped: %s", statusMark(env.Status), env.Module, env.SkipReason)
	}
	if retried {
		annotate = false
		head = fmt.Sprintf("↻ %s attempt %d %s%s%s, to be retried", env.Module, env.Attempts, status, durationNote(env), errorNote(env))
	} else {
		c.done++
		switch {
		case env.Status.Failed() && env.IgnoredFailure:
			c.ignored++
		case env.Status.Failed():
			c.failed++
		}
	}
	progress := ""
	if c.opts.Total > 0 && !retried {
		progress = fmt.Sprintf(" [%d/%d]", c.done, c.opts.Total)
	}
	g := c.groups[env.Module]
	delete(c.groups, env.Module)
	switch c.opts.Style {
	case StylePlain, StyleLive:
		c.emit([]string{head + progress})
	case StyleGitHub:
		if g != nil && !g.empty() {
			c.writeGroup(githubGroup(head), g, []string{"::endgroup::"})
		} else {
			c.emit([]string{head + progress})
		}
		if env.Status.Failed() && annotate {
			msg := string(env.Status)
			if env.Error != nil {
				msg = env.Error.Message
			}
			level := "error"
			if env.IgnoredFailure {
				level = "warning" // ignore_failure: it did not fail the run
			}
			var a string
			if env.Error != nil && env.Error.File != "" {
				// A configuration error: shown beside its line.
				file := WorkspacePath(c.opts.Workspace, env.Error.File)
				a = GitHubFileAnnotation(level, file, env.Error.Line, env.Error.Column, env.Module+" "+status, msg)
			} else {
				a = GitHubAnnotation(level, env.Module+" "+status, msg)
			}
			if a = c.annotations.add(level, env.Module, a); a != "" {
				c.emit([]string{a})
			}
		}
	case StyleGitLab:
		if g == nil || g.empty() {
			c.emit([]string{head + progress})
			return
		}
		start, end := env.StartedAt, env.EndedAt
		if start.IsZero() || end.IsZero() {
			start, end = c.opts.Now(), c.opts.Now()
		}
		collapsed := "[collapsed=true]"
		if env.Status.Failed() {
			collapsed = "" // open what the reader came for
		}
		open, closing := c.gitlabSection(env.Module, start, end, collapsed, head+progress)
		c.writeGroup([]string{open}, g, []string{closing})
	case StyleBuildkite:
		var closing []string
		if env.Status.Failed() {
			closing = []string{"^^^ +++"} // expand the failed module's group
		}
		c.writeGroup([]string{"--- " + head + progress}, g, closing)
	}
}

// writeGroup writes g's lines, masked already, between the lines open
// and closing, which it masks. g may be nil: no lines. Called with mu
// held.
func (c *Console) writeGroup(open []string, g *group, closing []string) {
	c.writeLines(open)
	if g != nil {
		c.writeMasked(g.head.take()...)
		if n := g.note(); n != "" {
			c.writeLines([]string{n})
		}
		c.writeMasked(g.tail[g.tailStart:])
		*g = group{}
	}
	c.writeLines(closing)
}

// writeMasked writes bufs, output lines masked already that end with a
// newline, which the caller gives up. Called with mu held.
func (c *Console) writeMasked(bufs ...[]byte) {
	if c.out.Buffered() > 0 {
		// A partial line waits to be masked with what follows it.
		for _, b := range bufs {
			_, _ = c.out.Write(b)
		}
		return
	}
	_ = c.batch.writeOwned(bufs...)
}

// Line prints one line of a module's output: prefixed with the module in
// the plain and live styles, inside the module's group in the CI styles.
func (c *Console) Line(module, stream, text string) {
	// Printed as it is, a \r would move the cursor back over the
	// module's prefix, and a counter's states would overwrite it.
	// The final text is the end of the line as it came, so a line
	// masked already stays masked.
	text = report.FinalText(text)
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.groups[module]; g != nil {
		prefix := ""
		switch {
		case c.opts.Style == StyleGitHub && strings.HasPrefix(text, "::"):
			prefix = githubCommandPrefix(text)
		case stream == "stderr":
			// Marked so the reader can tell the streams apart, as the
			// prefixed styles do.
			prefix = "! "
		}
		if !c.maskedWith(prefix) {
			text, prefix = c.opts.Masker.String(prefix+text), ""
		}
		g.add(prefix, text, c.opts.MaxBuffered)
		return
	}
	sep := " | "
	if stream == "stderr" {
		sep = " ! "
	}
	// One string for the line, its prefix a slice of it: an allocation
	// fewer a line, which shows in output of millions of short lines.
	line := module + sep + text
	c.waitRoom()
	c.emitMasked([]string{line}, c.maskedWith(line[:len(module)+len(sep)]))
}

// maskedWith reports whether a module's line, given to Line, is masked
// with prefix in front of it: the caller masked the line (LinesMasked)
// and no secret can start in prefix. Called with mu held.
func (c *Console) maskedWith(prefix string) bool {
	if !c.opts.LinesMasked {
		return false
	}
	if prefix == "" || c.opts.Masker.Empty() {
		return true
	}
	may, ok := c.prefixes[prefix]
	if !ok {
		may = c.opts.Masker.MayStartIn(prefix)
		if c.prefixes == nil {
			c.prefixes = map[string]bool{}
		}
		c.prefixes[strings.Clone(prefix)] = may // prefix may be a slice of a long line
	}
	return !may
}

// Eventf prints one line about the run itself.
func (c *Console) Eventf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	c.emit([]string{fmt.Sprintf(format, args...)})
}

// BeginSummary marks the start of the end-of-run summary. Buildkite gets
// an expanded "+++ Summary" group, since without it the summary would land
// in the group of the module that finished last; the other styles need
// no marker.
func (c *Console) BeginSummary() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	if c.opts.Style == StyleBuildkite {
		c.writeLines([]string{"+++ Summary"})
	}
}

// Write prints a block (the summary) as it is, masked line by line. In
// the live style the view is taken down first and redrawn after.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitRoom()
	c.clearView()
	n, err := c.out.Write(p)
	if err == nil && !c.closed {
		c.drawView()
	}
	return n, err
}

// WriteAside writes p to w, another stream to the same terminal as the
// console's (standard error: log lines, notices, errors), with the live
// view taken off the screen first and drawn again below p. Written past
// the view, p would be erased by the next redraw, which moves up by the
// view's own lines only, and leave stale lines of the view behind. p that
// does not end a line gets a newline, for the view to start on a line of
// its own. Without a live view on the screen p is written as it is.
func (c *Console) WriteAside(w io.Writer, p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.Style != StyleLive || c.closed {
		return w.Write(p)
	}
	c.clearView()
	n, err := w.Write(p)
	if err == nil && len(p) > 0 && p[len(p)-1] != '\n' {
		_, err = io.WriteString(w, "\n")
	}
	c.drawView()
	return n, err
}

// Close ends the live view (taking its lines off the screen), prints the
// output of modules that never finished, and flushes a partial line.
// The console still prints afterwards, without the live view.
func (c *Console) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	// Writes that wait for the flusher's room go on: Close writes the
	// queue itself.
	c.batch.flushing = false
	c.batch.room.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearView()
	names := make([]string, 0, len(c.groups))
	for name := range c.groups {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if g := c.groups[name]; !g.empty() {
			c.unfinished(name, g)
		}
	}
	c.groups = map[string]*group{}
	c.writeLines(c.annotations.last())
	err := c.out.Flush()
	// From here on the console prints at once (the summary).
	c.batch.hold = false
	if ferr := c.batch.flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = c.batch.err
	}
	return err
}

// unfinished writes the output of a module that never finished (a run
// stopped at once), in a group of the style's own, as a finished
// module's is, so the CI folds it and shows where it begins and ends.
// Called with mu held.
func (c *Console) unfinished(module string, g *group) {
	head := "output of " + module + " (it did not finish)"
	switch c.opts.Style {
	case StyleGitHub:
		c.writeGroup(githubGroup(head), g, []string{"::endgroup::"})
	case StyleGitLab:
		now := c.opts.Now()
		open, closing := c.gitlabSection(module, now, now, "", head)
		c.writeGroup([]string{open}, g, []string{closing})
	default:
		c.writeGroup([]string{"--- " + head}, g, nil)
	}
}

// MaxAnnotations is how many annotations of a level (error, warning)
// GitHub shows for a step; it drops the others.
const MaxAnnotations = 10

// annotations counts a run's GitHub annotations of each level, so that
// the last one GitHub shows says how many more modules failed rather
// than name one of them: past MaxAnnotations they would be lost without
// a word. Used with Console.mu held.
type annotations struct {
	count map[string]int
	// held is each level's last annotation GitHub shows, written at
	// Close as it is if no other module of its level failed after it.
	held map[string]string
	// modules are the modules of held and after it, of each level.
	modules map[string][]string
}

// add returns annotation a, of level, for module, to write now, or ""
// when it is held or one past what GitHub shows.
func (as *annotations) add(level, module, a string) string {
	if as.count == nil {
		as.count, as.held, as.modules = map[string]int{}, map[string]string{}, map[string][]string{}
	}
	as.count[level]++
	n := as.count[level]
	if n < MaxAnnotations {
		return a
	}
	if n == MaxAnnotations {
		as.held[level] = a
	}
	as.modules[level] = append(as.modules[level], module)
	return ""
}

// last returns the annotations held back: each level's last one, or one
// that says how many more modules failed and names them. It forgets them.
func (as *annotations) last() []string {
	var out []string
	for _, level := range []string{"error", "warning"} {
		a, ok := as.held[level]
		if !ok {
			continue
		}
		if modules := as.modules[level]; len(modules) > 1 {
			title := fmt.Sprintf("%d more modules failed", len(modules))
			if level == "warning" {
				title += " (ignored)"
			}
			a = GitHubAnnotation(level, title, fmt.Sprintf("%s. GitHub shows %d annotations of a kind for a step: the step summary and the log have every failure.",
				report.JoinNames(modules, 2<<10), MaxAnnotations))
		}
		out = append(out, a)
	}
	as.count, as.held, as.modules = nil, nil, nil
	return out
}

// githubCommandPrefix is what goes in front of a module's line that
// starts as a GitHub workflow command does. Such a line is kept as it
// is, from either stream, so that a tool
// that annotates (a linter's "::error file=...::") or masks a value
// ("::add-mask::") works as in a step of its own; but the commands that
// would end or open a group, or stop the host's own commands, are shown
// with a space in front, which GitHub does not obey: the groups are the
// host's, one per module.
func githubCommandPrefix(text string) string {
	name, _, _ := strings.Cut(text[2:], "::")
	name, _, _ = strings.Cut(name, " ")
	switch strings.ToLower(name) {
	case "group", "endgroup", "stop-commands":
		return " "
	}
	// ::{token}:: resumes commands stopped with ::stop-commands::{token}.
	return ""
}

// githubGroup is the line that opens a GitHub Actions log group titled
// title; "::endgroup::" closes it.
func githubGroup(title string) []string {
	return []string{"::group::" + escapeData(title)}
}

// gitlabSection returns the lines that open and close a GitLab CI
// section of module's (a new name each time) titled title, from start
// to end, with the section's options (such as "[collapsed=true]").
// Called with mu held.
func (c *Console) gitlabSection(module string, start, end time.Time, options, title string) (open, closing string) {
	c.sections++
	name := fmt.Sprintf("modpipe_%d_%s", c.sections, sectionName(module))
	return fmt.Sprintf("\x1b[0Ksection_start:%d:%s%s\r\x1b[0K%s", start.Unix(), name, options, title),
		fmt.Sprintf("\x1b[0Ksection_end:%d:%s\r\x1b[0K", end.Unix(), name)
}

// buffers reports whether the style holds output per module.
func (c *Console) buffers() bool {
	return c.opts.Style == StyleGitHub || c.opts.Style == StyleGitLab || c.opts.Style == StyleBuildkite
}

// emit prints lines above the live view (taking it down and redrawing
// it in the same write, so it does not flicker) or, in the other styles,
// just prints them. nil lines only redraw. Called with mu held.
func (c *Console) emit(lines []string) { c.emitMasked(lines, false) }

// emitMasked is emit for lines that are masked already when masked.
// Called with mu held.
func (c *Console) emitMasked(lines []string, masked bool) {
	if c.opts.Style != StyleLive || c.closed {
		if masked && c.out.Buffered() == 0 && len(lines) > 0 {
			_ = c.batch.writeLines(lines)
			return
		}
		c.writeLines(lines)
		return
	}
	var b strings.Builder
	if c.drawn > 0 {
		b.WriteString("\r")
		b.WriteString(cursorUp(c.drawn))
		b.WriteString(eraseScreenBelow)
	}
	for _, l := range lines {
		if !masked {
			l = c.opts.Masker.String(l)
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
	// Redrawn below every line, the view multiplied a chatty module's
	// output on the terminal (8.8 MB written for 100,000 short lines,
	// against 1.3 MB without it) and slowed the modules writing it. Lines
	// that come faster than liveRedrawEvery leave it off the screen; the
	// timer (or the next slower line) puts it back.
	now := time.Now()
	if lines == nil || c.opts.Refresh < 0 || now.Sub(c.drawnAt) >= liveRedrawEvery {
		view := c.view()
		for _, l := range view {
			b.WriteString(c.opts.Masker.String(l))
			b.WriteString("\n")
		}
		c.drawn, c.drawnAt = len(view), now
	} else {
		c.drawn = 0
	}
	_, _ = io.WriteString(c.opts.Out, b.String())
}

// liveRedrawEvery is the least time between two redraws of the live view
// that output lines cause.
const liveRedrawEvery = 50 * time.Millisecond

// clearView takes the live view off the screen. Called with mu held.
func (c *Console) clearView() {
	if c.opts.Style != StyleLive || c.drawn == 0 {
		return
	}
	_, _ = io.WriteString(c.opts.Out, "\r"+cursorUp(c.drawn)+eraseScreenBelow)
	c.drawn = 0
}

// drawView draws the live view below what was printed. Called with mu held.
func (c *Console) drawView() {
	if c.opts.Style != StyleLive {
		return
	}
	c.emit(nil)
}

// writeLines prints lines through the masker. Called with mu held.
func (c *Console) writeLines(lines []string) {
	if len(lines) == 0 {
		return
	}
	_, _ = c.out.Write([]byte(strings.Join(lines, "\n") + "\n"))
}

// view renders the live view: a status line, then the longest-running
// modules, then how many more, each cut to the terminal's width.
func (c *Console) view() []string {
	now := c.opts.Now()
	// Cut to the terminal however narrow: a line that wraps takes a row
	// more than the view counts, and each redraw would leave one behind.
	width := max(c.opts.Width(), 2)
	status := fmt.Sprintf("%d done, %d running", c.done, len(c.running))
	if c.opts.Total > 0 {
		status = fmt.Sprintf("%d/%d done, %d running", c.done, c.opts.Total, len(c.running))
	}
	if c.failed > 0 {
		status += fmt.Sprintf(", %d failed", c.failed)
	}
	if c.ignored > 0 {
		status += fmt.Sprintf(", %d failed (ignored)", c.ignored)
	}
	status += " · " + report.FormatDuration(now.Sub(c.started).Truncate(100*time.Millisecond))
	lines := []string{truncate(status, width-1, "…")}

	rs := c.listedLocked()
	for _, r := range rs {
		at := where(r.instance, r.host)
		if r.fleet && r.instance < 0 && c.locate != nil {
			at = " queued for the fleet"
		}
		l := fmt.Sprintf("  %s %s%s%s", report.FormatDuration(now.Sub(r.since).Truncate(100*time.Millisecond)), r.module, attemptNote(r.attempt), at)
		lines = append(lines, truncate(l, width-1, "…"))
	}
	if more := len(c.running) - len(rs); more > 0 {
		lines = append(lines, fmt.Sprintf("  … and %d more", more))
	}
	return lines
}

// byteSize is n bytes for people, rounded down: 8 MiB, 100 bytes.
func byteSize(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

func attemptNote(attempt int) string {
	if attempt > 1 {
		return fmt.Sprintf(" (attempt %d)", attempt)
	}
	return ""
}

func where(instance int, host string) string {
	switch {
	case instance < 0:
		return " in the fleet"
	case host == "":
		return fmt.Sprintf(" on instance %d", instance)
	}
	return fmt.Sprintf(" on instance %d (%s)", instance, host)
}

func durationNote(env coordinator.Envelope) string {
	if env.Status == coordinator.StatusSkipped || (env.Status == coordinator.StatusCancelled && env.Attempts == 0) {
		return ""
	}
	return " in " + report.FormatDuration(time.Duration(env.DurationMS)*time.Millisecond)
}

func errorNote(env coordinator.Envelope) string {
	if env.Error != nil && env.Error.Message != "" {
		return ": " + firstLine(env.Error.Message)
	}
	if env.SkipReason != "" {
		return ": " + firstLine(env.SkipReason)
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func statusMark(s coordinator.Status) string {
	switch s {
	case coordinator.StatusSucceeded:
		return "✔"
	case coordinator.StatusFailed, coordinator.StatusTimedOut:
		return "✘"
	case coordinator.StatusCancelled:
		return "■"
	}
	return "–"
}

// escapeData escapes a GitHub workflow command's message, which ends at
// the line's end.
// GitHubAnnotation is a GitHub Actions workflow command that annotates the
// run: level "error", "warning" or "notice", with a title and a message.
func GitHubAnnotation(level, title, msg string) string {
	return fmt.Sprintf("::%s title=%s::%s", level, escapeProperty(title), escapeData(msg))
}

// WorkspacePath is file relative to workspace (GITHUB_WORKSPACE) when it
// lies inside it, for an annotation's file property: GitHub places an
// annotation on a file by its path in the repository. Otherwise, and
// with no workspace, it is file.
func WorkspacePath(workspace, file string) string {
	if workspace == "" || file == "" {
		return file
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return file
	}
	rel, err := filepath.Rel(workspace, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return file
	}
	return filepath.ToSlash(rel)
}

// GitHubFileAnnotation is GitHubAnnotation at a place in a file (file
// empty: none), which GitHub shows beside that line.
func GitHubFileAnnotation(level, file string, line, col int, title, msg string) string {
	if file == "" {
		return GitHubAnnotation(level, title, msg)
	}
	return fmt.Sprintf("::%s file=%s,line=%d,col=%d,title=%s::%s", level, escapeProperty(file), line, col, escapeProperty(title), escapeData(msg))
}

func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value, which also
// ends at ':' and ','.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

var sectionUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// sectionName makes a GitLab section name from a module address: letters,
// digits, '_', '.' and '-' only.
func sectionName(module string) string {
	return strings.Trim(sectionUnsafe.ReplaceAllString(module, "_"), "_")
}

// The live view needs two escape sequences and a width-aware cut, written
// here rather than taken from charmbracelet/x/ansi: that package pulls in
// go-runewidth, whose init builds a table of every Unicode code point and
// cost 40 to 100 ms of every host command's start (GODEBUG=inittrace=1),
// half the cold start of a whole run.

// eraseScreenBelow clears from the cursor to the end of the screen (ED 0).
const eraseScreenBelow = "\x1b[J"

// cursorUp moves the cursor up n lines (CUU).
func cursorUp(n int) string {
	if n <= 1 {
		return "\x1b[A"
	}
	return "\x1b[" + strconv.Itoa(n) + "A"
}

// viewWidth measures terminal cells, skipping escape sequences, so a
// wide character counts twice and a colour code not at all.
var viewWidth = displaywidth.Options{ControlSequences: true}

// truncate cuts s to at most w terminal cells, ending it with tail when
// it was cut.
func truncate(s string, w int, tail string) string {
	return viewWidth.TruncateString(s, w, tail)
}
