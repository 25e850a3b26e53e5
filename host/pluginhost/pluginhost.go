// Package pluginhost starts modpipe plugins and talks to them: one process
// per plugin, reused for every module it runs, restarted transparently
// after it crashes or hangs. It speaks the protocol in proto/pluginv1 over
// hashicorp/go-plugin (gRPC, AutoMTLS, versioned handshake) and serves the
// plugins' requests for dependency results through go-plugin's broker.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/schema"
	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// ProcessEnv is set in each plugin process's environment to a value of
// that process alone. Commands a plugin starts inherit it (keep it in
// theirs): when the plugin dies or is killed as hung, the host kills
// every process that still carries it (on Linux), so a module's commands
// do not outlive the plugin that started them.
const ProcessEnv = "MODPIPE_PLUGIN_PROCESS"

// DefaultKillGrace is how long a cancelled module may take to stop before
// its plugin is considered hung and killed.
const DefaultKillGrace = 5 * time.Second

// crashWait bounds the wait for a dying plugin's exit and last stderr
// lines after its connection broke. It only guards against a process that
// broke its connection but does not exit; such a process is killed.
const crashWait = 10 * time.Second

// Spec says which plugin to start and how.
type Spec struct {
	// Name is the plugin's name in the pipeline, used in messages.
	Name string
	// Path is the plugin binary.
	Path string
	Args []string
	// Env entries (KEY=VALUE) are added to the host's environment.
	Env []string
	// SHA256, when set, pins the binary: a binary with another checksum
	// (hex) is refused.
	SHA256 string
}

// ResultFunc returns the envelope of dependency dep of the module caller,
// for a plugin that asked for it. Wrap ErrNotDependency or ErrNotFinished
// to tell the plugin which case it is.
type ResultFunc func(ctx context.Context, caller, dep string) (*coordinator.Envelope, error)

// Options configure a Plugin.
type Options struct {
	// Logger gets the plugin's log and stderr lines; nil discards them.
	Logger hclog.Logger
	// Results serves sdk.Result; nil refuses every request.
	Results ResultFunc
	// KillGrace is how long a cancelled module may take to stop before
	// the plugin process is killed as hung; zero means DefaultKillGrace.
	KillGrace time.Duration
	// AnswerTimeout bounds the plugin's answer to Describe and Validate,
	// which do none of a module's work: a plugin that never answers fails
	// its start, or the check, instead of holding the run. Zero means
	// DefaultAnswerTimeout.
	AnswerTimeout time.Duration
	// TLS is the host's identity for mutual TLS with the plugin; nil
	// makes one for each process. Share one across plugins to make it
	// once.
	TLS *TLSIdentity
	// SocketRoot is where go-plugin makes each plugin process's folder
	// of Unix sockets (see SocketRoot); empty means the system's
	// temporary folder.
	SocketRoot string

	// afterCheck, set by tests, runs between the binary's check and its
	// start.
	afterCheck func()
}

// Info is what a plugin said about itself.
type Info struct {
	Name            string
	Version         string
	ProtocolVersion int
	Kinds           []schema.Kind
	// sessions says the plugin serves the Session RPC.
	sessions bool
}

// Diagnostic is a problem a plugin found in a module's config.
type Diagnostic struct {
	// Severity is "error" or "warning".
	Severity string
	Summary  string
	Detail   string
	// Attribute is the attribute path concerned ("env", "steps[0].name"),
	// or "" for the whole config.
	Attribute string
}

// Request is one module to execute.
type Request struct {
	Module string
	Kind   string
	Config json.RawMessage
	// Matrix maps axes to values; "target" is the matrix target.
	Matrix   map[string]string
	Attempt  int
	Instance int
	RunID    string
	// Deps are the module addresses whose results the module may fetch.
	Deps []string
}

// Line is one line of module output.
type Line struct {
	// Stream is "stdout", "stderr" or "log".
	Stream string
	Text   string
	// Continued says Text is a piece of a line too long for one message,
	// which goes on in the stream's next Line.
	Continued bool
}

// Response is how a module ended, as the plugin reported it.
type Response struct {
	Succeeded bool
	// Type is the result type name.
	Type  string
	Value json.RawMessage
	// Error is set when the module did not succeed.
	Error *coordinator.Error
	// FinishedUncancelled says the module's run ended before it was asked
	// to stop (see the protocol's Result.finished_uncancelled).
	FinishedUncancelled bool
}

// Plugin is a started plugin. Its methods are safe for concurrent use.
type Plugin struct {
	spec   Spec
	opts   Options
	logger hclog.Logger
	info   Info

	execSeq atomic.Uint64
	// noValidateMany is set once the plugin answered ValidateMany with
	// UNIMPLEMENTED: it gets Validate calls from then on.
	noValidateMany atomic.Bool

	mu     sync.Mutex // guards cur, sess, closed, starts
	cur    *process   // nil after a crash until the next call restarts it
	sess   *session   // cur's Session stream, opened by Start, else on first use
	closed bool
	starts int // processes started, for tests and logs

	// inflightMu is separate from mu: the Host service reads inflight
	// while a restart holds mu, and stopping a process waits for the Host
	// service's calls to finish.
	inflightMu sync.Mutex
	inflight   map[string]*Request // execution id -> request, for GetResult checks
}

// Start starts the plugin binary, checks its handshake and protocol
// version, and asks it to describe itself. It returns a *StartError when
// the plugin cannot be used.
func Start(ctx context.Context, spec Spec, opts Options) (*Plugin, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.AnswerTimeout <= 0 {
		opts.AnswerTimeout = DefaultAnswerTimeout
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = DefaultKillGrace
	}
	p := &Plugin{
		spec:     spec,
		opts:     opts,
		logger:   opts.Logger.Named("plugin." + spec.Name),
		inflight: map[string]*Request{},
	}
	pr, err := p.checkAndStart(ctx)
	if err != nil {
		return nil, err
	}
	info, err := p.describe(ctx, pr)
	if err != nil {
		pr.kill()
		return nil, err
	}
	p.info = info
	p.cur = pr
	p.starts = 1
	// Open the Session stream now, while the host validates: the
	// plugin's side of it is then waiting when the first module comes.
	// Should it fail, the first Execute tries again and reports it.
	if _, err := p.session(pr); err != nil {
		p.logger.Debug("open the session stream", "error", err)
	}
	p.logger.Info("plugin ready", "path", spec.Path, "pid", pr.pid(), "version", info.Version, "kinds", len(info.Kinds))
	return p, nil
}

// checkAndStart checks the binary and starts a process of it: of the
// copy that was checked, when the binary is pinned (see pinnedCopy).
func (p *Plugin) checkAndStart(ctx context.Context) (*process, error) {
	exe, err := p.checkBinary()
	if err != nil {
		return nil, err
	}
	if exe != nil {
		// The process has its own once it started (or failed to).
		defer exe.Close()
	}
	if p.opts.afterCheck != nil {
		p.opts.afterCheck()
	}
	return p.startProcess(ctx, exe)
}

// checkBinary refuses a missing binary and one whose checksum differs
// from the pinned one, before anything runs. For a pinned binary it may
// return the sealed copy that was checked, to be run instead of the path.
func (p *Plugin) checkBinary() (*os.File, error) {
	st, err := os.Stat(p.spec.Path)
	if err != nil {
		msg := "no plugin binary at this path; build the plugin or fix the path"
		if !errors.Is(err, os.ErrNotExist) {
			msg = "cannot read the plugin binary"
		}
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonNotFound, Msg: msg, Err: err}
	}
	if st.IsDir() {
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonNotFound, Msg: "the path is a directory, not a plugin binary"}
	}
	if p.spec.SHA256 == "" {
		return nil, nil
	}
	want := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(p.spec.SHA256, "sha256:")))
	f, err := os.Open(p.spec.Path)
	if err != nil {
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonNotFound, Msg: "cannot read the plugin binary to check its sha256", Err: err}
	}
	defer f.Close()
	h := sha256.New()
	exe, err := pinnedCopy(p.spec.Name, f, h)
	if err != nil {
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonExec, Msg: "cannot copy the pinned plugin binary to run what was checked", Err: err}
	}
	if exe == nil {
		_, err = io.Copy(h, f)
	}
	if err != nil {
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonChecksum, Msg: "cannot read the plugin binary to check its sha256", Err: err}
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != want {
		if exe != nil {
			exe.Close()
		}
		return nil, &StartError{
			Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonChecksum,
			Msg:      "the binary's sha256 does not match the pinned one; rebuild the right binary or update sha256 in the plugin block",
			Expected: "sha256 " + want,
			Found:    "sha256 " + got,
		}
	}
	return exe, nil
}

// DefaultAnswerTimeout bounds a plugin's answer to Describe and Validate
// when Options.AnswerTimeout is zero.
const DefaultAnswerTimeout = startTimeout

// describe asks the plugin for its identity and kinds and checks them.
func (p *Plugin) describe(ctx context.Context, pr *process) (Info, error) {
	fail := func(msg string, err error) (Info, error) {
		return Info{}, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonDescribe, Msg: msg, Err: err}
	}
	// A plugin that completed its handshake and then never answers would
	// hold the run forever: Describe gets the same bound as the start.
	dctx, cancel := context.WithTimeout(ctx, p.opts.AnswerTimeout)
	defer cancel()
	resp, err := pr.rpc.Describe(dctx, &pluginv1.DescribeRequest{HostBrokerId: pr.brokerID, OutputBatches: true})
	if err != nil {
		// gRPC's own timer may end the call a moment before dctx's.
		if (dctx.Err() == context.DeadlineExceeded || status.Code(err) == codes.DeadlineExceeded) && ctx.Err() == nil {
			return fail(fmt.Sprintf("the plugin completed its handshake but did not answer Describe within %s", p.opts.AnswerTimeout), nil)
		}
		if line, ok := pr.handshakeWithoutCert(); ok {
			return Info{}, &StartError{
				Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonHandshake,
				Msg:      "its handshake line has no TLS certificate (the sixth field): the host talks to plugins over mutual TLS only (go-plugin's AutoMTLS; the host's certificate is in PLUGIN_CLIENT_CERT), so serve gRPC over TLS and put the plugin's certificate in the handshake line (docs/writing-plugins.md)",
				Expected: "a handshake line ending in |grpc|CERTIFICATE",
				Found:    fmt.Sprintf("handshake line %q", line),
			}
		}
		return fail("the plugin did not describe itself", err)
	}
	if v := int(resp.GetProtocolVersion()); v != pluginv1.ProtocolVersion {
		return Info{}, &StartError{
			Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonProtocolVersion,
			Msg:      "the plugin describes itself with another protocol version than it negotiated",
			Expected: "protocol version " + strconv.Itoa(pluginv1.ProtocolVersion),
			Found:    "protocol version " + strconv.Itoa(v),
		}
	}
	info := Info{Name: resp.GetName(), Version: resp.GetVersion(), ProtocolVersion: int(resp.GetProtocolVersion()), sessions: resp.GetSessions()}
	if len(resp.GetKinds()) == 0 {
		return fail("the plugin declares no module kinds", nil)
	}
	defaults := 0
	seen := map[string]bool{}
	for _, mk := range resp.GetKinds() {
		if mk.GetName() == "" || seen[mk.GetName()] {
			return fail(fmt.Sprintf("the plugin declares an empty or duplicate module kind name %q", mk.GetName()), nil)
		}
		seen[mk.GetName()] = true
		k := schema.Kind{Name: mk.GetName(), Default: mk.GetDefault(), ResultType: mk.GetResultType(), Doc: mk.GetDoc()}
		if k.ResultType == "" {
			// Every envelope is typed (R4): its consumers go by it.
			return fail(fmt.Sprintf("kind %q declares no result_type (the versioned type name of its results, such as %q)", k.Name, k.Name+"/v1"), nil)
		}
		if rs := mk.GetResultSchema(); rs != "" {
			// Optional (older plugins send none), but one that is sent
			// must be a type: a wrong one would refuse valid pipelines.
			if err := k.Result.UnmarshalJSON([]byte(rs)); err != nil {
				return fail(fmt.Sprintf("kind %q declares a result_schema %s, which is not a cty JSON type (send an empty result_schema when the result's shape is not known)", k.Name, abbreviate(rs, 200)), err)
			}
		}
		if k.Default {
			defaults++
		}
		attrs := map[string]bool{}
		for _, a := range mk.GetAttributes() {
			if a.GetName() == "" || attrs[a.GetName()] {
				return fail(fmt.Sprintf("kind %q declares an empty or duplicate attribute name %q", k.Name, a.GetName()), nil)
			}
			attrs[a.GetName()] = true
			var t cty.Type
			if err := t.UnmarshalJSON([]byte(a.GetType())); err != nil {
				msg := fmt.Sprintf("kind %q declares attribute %q with type %s, which is not a cty JSON type", mk.GetName(), a.GetName(), a.GetType())
				if !strings.ContainsAny(a.GetType(), `"[`) {
					msg += fmt.Sprintf(` (the type is JSON text, quotes included: "\"%s\"")`, a.GetType())
				}
				return fail(msg, err)
			}
			k.Attributes = append(k.Attributes, schema.Attribute{Name: a.GetName(), Type: t, Required: a.GetRequired(), Doc: a.GetDoc()})
		}
		info.Kinds = append(info.Kinds, k)
	}
	if defaults > 1 {
		return fail("the plugin marks more than one module kind as the default", nil)
	}
	if defaults == 0 {
		info.Kinds[0].Default = true
	}
	return info, nil
}

// Info returns what the plugin said about itself when it started.
func (p *Plugin) Info() Info {
	info := p.info
	info.Kinds = slices.Clone(p.info.Kinds)
	return info
}

// Kind returns the module kind named name, or the default kind for "".
func (p *Plugin) Kind(name string) (*schema.Kind, bool) {
	for i := range p.info.Kinds {
		k := &p.info.Kinds[i]
		if (name == "" && k.Default) || (name != "" && k.Name == name) {
			out := *k
			return &out, true
		}
	}
	return nil, false
}

// PID returns the process id of the plugin's current process, or 0 when
// none is running (after a crash, before the next call restarts it).
func (p *Plugin) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.exited() {
		return 0
	}
	return p.cur.pid()
}

// Starts returns how many processes this Plugin has started: 1, plus one
// per restart after a crash or a kill.
func (p *Plugin) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// acquire returns the running process, starting a new one when the last
// one died. Holding the lock while starting makes concurrent callers wait
// for one new process instead of starting several.
func (p *Plugin) acquire(ctx context.Context) (*process, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("plugin %q: %w", p.spec.Name, ErrClosed)
	}
	if p.cur != nil && !p.cur.exited() {
		return p.cur, nil
	}
	if p.cur != nil { // died between calls: reap it
		p.dropSession(p.cur)
		p.cur.kill()
		p.cur = nil
	}
	p.logger.Info("restarting plugin", "path", p.spec.Path, "restart", p.starts)
	pr, err := p.checkAndStart(ctx)
	if err != nil {
		return nil, err
	}
	// Describe again: it hands the plugin the broker id, and a binary
	// replaced on disk since the first start must still be the same plugin.
	info, err := p.describe(ctx, pr)
	if err == nil && (info.Name != p.info.Name || info.Version != p.info.Version) {
		err = &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonDescribe,
			Msg:      "the binary changed since the run started; restart the run",
			Expected: fmt.Sprintf("%s %s", p.info.Name, p.info.Version),
			Found:    fmt.Sprintf("%s %s", info.Name, info.Version)}
	}
	if err != nil {
		pr.kill()
		return nil, err
	}
	p.cur = pr
	p.starts++
	return pr, nil
}

// discard kills pr and forgets it, unless another caller already did.
func (p *Plugin) discard(pr *process) {
	pr.discarded.Store(true)
	p.mu.Lock()
	if p.cur == pr {
		p.cur = nil
	}
	p.dropSession(pr)
	p.mu.Unlock()
	// A plugin that died (or was killed) had no chance to stop what its
	// modules started: kill returns once the process has been waited
	// for, and its runner has killed what carries its tag by then
	// (cmdRunner.cleanUp).
	pr.kill()
}

// session returns pr's Session stream, opening it on first use or after
// the last one ended; nil when the plugin does not serve sessions.
func (p *Plugin) session(pr *process) (*session, error) {
	if !p.info.sessions {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.sess; s != nil && s.pr == pr && !s.ended() {
		return s, nil
	}
	if p.cur != pr {
		return nil, fmt.Errorf("plugin %q: the process was replaced", p.spec.Name)
	}
	p.dropSession(pr)
	s, err := openSession(pr)
	if err != nil {
		return nil, err
	}
	p.sess = s
	return s, nil
}

// dropSession closes pr's session, if it has one. The caller holds p.mu.
func (p *Plugin) dropSession(pr *process) {
	if p.sess != nil && p.sess.pr == pr {
		p.sess.close()
		p.sess = nil
	}
}

// Validate asks the plugin to check a module's config.
func (p *Plugin) Validate(ctx context.Context, kind string, config json.RawMessage) ([]Diagnostic, error) {
	pr, err := p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	vctx, cancel := context.WithTimeout(ctx, p.opts.AnswerTimeout)
	defer cancel()
	resp, err := pr.rpc.Validate(vctx, &pluginv1.ValidateRequest{Kind: kind, ConfigJson: string(config)})
	if err != nil {
		return nil, p.validateError(ctx, vctx, pr, err, fmt.Sprintf("Validate for kind %q", kind))
	}
	return diagnosticsOf(resp), nil
}

// validateError says why a Validate or ValidateMany call (what, for the
// message) under vctx, a deadline on ctx, got no answer.
func (p *Plugin) validateError(ctx, vctx context.Context, pr *process, err error, what string) error {
	if ctx.Err() != nil {
		return fmt.Errorf("validate with plugin %q: %w", p.spec.Name, ctx.Err())
	}
	if vctx.Err() == context.DeadlineExceeded || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("plugin %q (%s) did not answer %s within %s", p.spec.Name, p.spec.Path, what, p.opts.AnswerTimeout)
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.NotFound {
		return fmt.Errorf("validate with plugin %q: %s", p.spec.Name, st.Message())
	}
	if pr.lost(err) {
		// The plugin died checking a config (its own check exited or
		// crashed): say so with how it ended and its last words, as a
		// crash while running a module does, rather than the gRPC
		// error of a connection cut (which names a socket). The next
		// call starts it again.
		p.reap(pr, "call", what)
		msg := fmt.Sprintf("plugin %q (%s) died while answering %s", p.spec.Name, p.spec.Path, what)
		if st := pr.run.exitStatus(); st != "" {
			msg += ": " + st
		}
		if tail := strings.TrimSpace(pr.tail.String()); tail != "" {
			msg += "; the last it wrote to stderr:\n" + tail
		} else {
			msg += " (it wrote nothing to stderr)"
		}
		return &diedError{msg: msg, err: err}
	}
	return fmt.Errorf("validate with plugin %q: %w", p.spec.Name, err)
}

// diagnosticsOf converts a Validate answer.
func diagnosticsOf(resp *pluginv1.ValidateResponse) []Diagnostic {
	var diags []Diagnostic
	for _, d := range resp.GetDiagnostics() {
		sev := "error"
		if d.GetSeverity() == pluginv1.Severity_SEVERITY_WARNING {
			sev = "warning"
		}
		diags = append(diags, Diagnostic{Severity: sev, Summary: d.GetSummary(), Detail: d.GetDetail(), Attribute: d.GetAttribute()})
	}
	return diags
}

// Question is a config to validate, for ValidateMany.
type Question struct {
	Kind   string
	Config json.RawMessage
}

// Verdict is the plugin's answer to one Question: what Validate would
// have returned for it.
type Verdict struct {
	Diagnostics []Diagnostic
	Err         error
}

// ValidateMany asks the plugin to check several configs in one call and
// returns a verdict for each, in order. A plugin that does not serve
// ValidateMany (a third-party or older one) is asked with a Validate call
// per config instead, and is not offered ValidateMany again.
func (p *Plugin) ValidateMany(ctx context.Context, qs []Question) []Verdict {
	out := make([]Verdict, len(qs))
	if len(qs) == 0 {
		return out
	}
	if !p.noValidateMany.Load() {
		err := p.validateMany(ctx, qs, out)
		if err == nil {
			return out
		}
		if status.Code(err) != codes.Unimplemented {
			for i := range out {
				out[i] = Verdict{Err: err}
			}
			return out
		}
		p.noValidateMany.Store(true)
	}
	for i, q := range qs {
		out[i].Diagnostics, out[i].Err = p.Validate(ctx, q.Kind, q.Config)
	}
	return out
}

// validateMany makes the ValidateMany call, filling out. Its error is
// the gRPC status as the plugin sent it (Unimplemented for a plugin
// without the call), or one that says what went wrong.
func (p *Plugin) validateMany(ctx context.Context, qs []Question, out []Verdict) error {
	pr, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	req := &pluginv1.ValidateManyRequest{Requests: make([]*pluginv1.ValidateRequest, len(qs))}
	for i, q := range qs {
		req.Requests[i] = &pluginv1.ValidateRequest{Kind: q.Kind, ConfigJson: string(q.Config)}
	}
	vctx, cancel := context.WithTimeout(ctx, p.opts.AnswerTimeout)
	defer cancel()
	resp, err := pr.rpc.ValidateMany(vctx, req)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return err
		}
		return p.validateError(ctx, vctx, pr, err, fmt.Sprintf("ValidateMany for %d config%s", len(qs), plural(len(qs))))
	}
	if got := len(resp.GetResponses()); got != len(qs) {
		return fmt.Errorf("plugin %q broke the protocol: ValidateMany answered %d of %d configs", p.spec.Name, got, len(qs))
	}
	for i, r := range resp.GetResponses() {
		out[i] = Verdict{Diagnostics: diagnosticsOf(r)}
	}
	return nil
}

// mayRead reports whether module caller is running in this plugin with
// dep among its dependencies.
func (p *Plugin) mayRead(caller, dep string) bool {
	p.inflightMu.Lock()
	defer p.inflightMu.Unlock()
	for _, r := range p.inflight {
		if r.Module == caller && slices.Contains(r.Deps, dep) {
			return true
		}
	}
	return false
}

// Execute runs one module in the plugin, passing each output line to out
// (from one goroutine, in order) and returning the plugin's result.
//
// It returns an error only when there is no result: ctx ended (the error
// wraps ctx's error; when the plugin does not stop the module within
// KillGrace its process is killed), the plugin process died (*CrashError),
// or the plugin broke the protocol (*ProtocolError). A dead or killed
// process is replaced on the next call.
func (p *Plugin) Execute(ctx context.Context, req Request, out func(Line)) (_ Response, err error) {
	pr, err := p.acquire(ctx)
	if err != nil {
		return Response{}, err
	}
	pr.begin(req.Module)
	defer func() {
		// A module the process died running stays on its list, so every
		// crash error of that process names all of them.
		if _, crashed := errors.AsType[*CrashError](err); !crashed {
			pr.end(req.Module)
		}
	}()
	id := strconv.FormatUint(p.execSeq.Add(1), 10)
	p.inflightMu.Lock()
	p.inflight[id] = &req
	p.inflightMu.Unlock()
	defer func() {
		p.inflightMu.Lock()
		delete(p.inflight, id)
		p.inflightMu.Unlock()
	}()

	preq := &pluginv1.ExecuteRequest{
		Module:       req.Module,
		Kind:         req.Kind,
		ConfigJson:   string(req.Config),
		Matrix:       req.Matrix,
		Attempt:      int32(req.Attempt),
		Instance:     int32(req.Instance),
		RunId:        req.RunID,
		Dependencies: req.Deps,
		HostBrokerId: pr.brokerID,
		ExecutionId:  id,
	}
	sess, err := p.session(pr)
	if err != nil {
		return Response{}, p.noResult(ctx, pr, id, req.Module, err)
	}
	if sess != nil {
		return p.executeOnSession(ctx, pr, sess, preq, out)
	}

	// The stream is cancelled only through ctx, and carries no deadline:
	// gRPC would send ctx's deadline to the plugin, whose clock could end
	// the stream before ctx itself is done, and the stream's end would not
	// be recognisable as ctx's doing.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopCancel := context.AfterFunc(ctx, cancel)
	defer stopCancel()
	stream, err := pr.rpc.Execute(streamCtx, preq)
	if err != nil {
		return Response{}, p.noResult(ctx, pr, id, req.Module, err)
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return Response{}, p.noResult(ctx, pr, id, req.Module, err)
		}
		switch e := ev.GetEvent().(type) {
		case *pluginv1.ExecuteEvent_Line:
			emitLines(out, e.Line)
		case *pluginv1.ExecuteEvent_Lines:
			emitLines(out, e.Lines.GetLines()...)
		case *pluginv1.ExecuteEvent_Result:
			return p.response(req.Module, e.Result)
		}
	}
}

// executeOnSession is Execute over the process's Session stream: the same
// events, results and errors as an Execute call of its own.
func (p *Plugin) executeOnSession(ctx context.Context, pr *process, sess *session, req *pluginv1.ExecuteRequest, out func(Line)) (Response, error) {
	id, module := req.GetExecutionId(), req.GetModule()
	call, err := sess.start(req)
	if err != nil {
		return Response{}, p.noResult(ctx, pr, id, module, err)
	}
	var events []*pluginv1.ExecuteEvent
	var stopping <-chan time.Time // the grace a cancelled module has to stop
	for {
		select {
		case <-call.ready:
		case <-stopping:
			// It did not stop: what it wrote while it tried was shown.
			sess.forget(id)
			p.killHung(pr, module)
			return Response{}, p.killedAsHungError(ctx, module)
		case <-func() <-chan struct{} {
			if stopping != nil {
				return nil // cancelled already: wait for its end
			}
			return ctx.Done()
		}():
			// Cancelled: the module keeps the stream while it stops, so
			// the lines it writes meanwhile and its own result (which
			// says how it stopped) are not lost.
			if err := sess.requestCancel(id); err != nil {
				sess.forget(id)
				return Response{}, p.noResult(ctx, pr, id, module, ctx.Err())
			}
			t := time.NewTimer(p.opts.KillGrace)
			defer t.Stop()
			stopping = t.C
			continue
		}
		events, err = call.take(events)
		for _, ev := range events {
			switch e := ev.GetEvent().(type) {
			case *pluginv1.ExecuteEvent_Line:
				emitLines(out, e.Line)
			case *pluginv1.ExecuteEvent_Lines:
				emitLines(out, e.Lines.GetLines()...)
			case *pluginv1.ExecuteEvent_Result:
				resp, rerr := p.response(module, e.Result)
				if stopping != nil && rerr == nil && !resp.FinishedUncancelled {
					// Stopped as asked: the caller's cancellation is the
					// outcome, as for a call cut short (Response has the
					// module's own word on it). A module that ended before
					// it saw the cancellation keeps its own outcome.
					rerr = fmt.Errorf("module %q in plugin %q: %w", module, p.spec.Name, ctx.Err())
				}
				return resp, rerr
			}
		}
		if err != nil {
			return Response{}, p.noResult(ctx, pr, id, module, err)
		}
	}
}

// emitLines passes output lines to out, in order; out may be nil.
func emitLines(out func(Line), lines ...*pluginv1.OutputLine) {
	if out == nil {
		return
	}
	for _, l := range lines {
		out(Line{Stream: streamName(l.GetStream()), Text: l.GetText(), Continued: l.GetContinued()})
	}
}

func (p *Plugin) response(module string, r *pluginv1.Result) (Response, error) {
	resp := Response{Succeeded: r.GetSucceeded(), Type: r.GetType(), FinishedUncancelled: r.GetFinishedUncancelled()}
	if v := r.GetValueJson(); v != "" {
		raw := []byte(v) // one copy, checked and kept
		if !validJSON(raw) {
			return Response{}, &ProtocolError{Plugin: p.spec.Name, Module: module, Msg: "the result value is not valid JSON"}
		}
		resp.Value = raw
	}
	if e := r.GetError(); e != nil {
		resp.Error = &coordinator.Error{Message: e.GetMessage(), Kind: e.GetKind(), Tail: e.GetTail()}
		if resp.Error.Kind == "" {
			resp.Error.Kind = coordinator.ErrorKindModule
		}
	}
	if !resp.Succeeded && resp.Error == nil {
		resp.Error = &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: "the module failed without saying why"}
	}
	return resp, nil
}

// noResult explains why an Execute stream ended without a result, and
// deals with the process: a hung one is killed, a dead one replaced.
func (p *Plugin) noResult(ctx context.Context, pr *process, id, module string, err error) error {
	if ctx.Err() != nil {
		if p.awaitStop(pr, id, module) {
			return p.killedAsHungError(ctx, module)
		}
		return fmt.Errorf("module %q in plugin %q: %w", module, p.spec.Name, ctx.Err())
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return fmt.Errorf("module %q in plugin %q: %w", module, p.spec.Name, ErrClosed)
	}
	if errors.Is(err, io.EOF) {
		return &ProtocolError{Plugin: p.spec.Name, Module: module, Msg: "the plugin ended the stream without a final result"}
	}
	if !pr.lost(err) {
		return &ProtocolError{Plugin: p.spec.Name, Module: module, Msg: "it ended the call with an error instead of a result (a module that fails sends a result that says so)", Err: err}
	}
	p.reap(pr, "module", module)
	crash := &CrashError{
		Plugin:       p.spec.Name,
		Path:         p.spec.Path,
		Module:       module,
		ExitStatus:   pr.run.exitStatus(),
		StderrTail:   pr.tail.String(),
		KilledAsHung: pr.hungReason(),
		Running:      pr.runningModules(),
		Err:          err,
	}
	if crash.KilledAsHung != "" {
		p.logger.Warn("module stopped: the host killed its plugin as hung", "module", module, "pid", pr.pid(), "reason", crash.KilledAsHung)
		return crash
	}
	p.logger.Error("plugin crashed", "module", module, "pid", pr.pid(), "status", crash.ExitStatus)
	return crash
}

// reap deals with pr once its connection broke: the process is dying or
// dead. It waits up to crashWait for it to exit, so its last stderr lines
// are in the tail, kills it if it does not, and discards it (the next call
// starts another). what names the call for the log.
func (p *Plugin) reap(pr *process, what ...any) {
	timer := time.NewTimer(crashWait)
	defer timer.Stop()
	select {
	case <-pr.done:
	case <-timer.C:
		p.logger.Warn("plugin connection lost but the process did not exit; killing it", append(what, "pid", pr.pid())...)
	}
	p.discard(pr)
}

// awaitStop waits up to KillGrace for the plugin to stop running a
// cancelled module and kills the process when it does not (it is hung;
// every other module still running in it fails with a CrashError that
// names the hung module).
// killHung kills pr as hung: module did not stop within the grace period
// after it was cancelled. Every other module running in it fails with a
// CrashError that names module.
func (p *Plugin) killHung(pr *process, module string) {
	p.logger.Warn("plugin did not stop a cancelled module; killing the plugin as hung", "module", module, "pid", pr.pid(), "grace", p.opts.KillGrace)
	reason := fmt.Sprintf("it did not stop cancelled module %q within %s", module, p.opts.KillGrace)
	pr.hung.CompareAndSwap(nil, &reason)
	p.discard(pr)
}

// killedAsHungError is a cancelled module's error once its plugin was
// killed for not stopping it: both the cancellation and ErrKilledAsHung.
func (p *Plugin) killedAsHungError(ctx context.Context, module string) error {
	return fmt.Errorf("module %q in plugin %q: %w, and %w (it did not stop within %s)", module, p.spec.Name, ctx.Err(), ErrKilledAsHung, p.opts.KillGrace)
}

func (p *Plugin) awaitStop(pr *process, id, module string) (killed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.KillGrace)
	defer cancel()
	_, err := pr.rpc.Await(ctx, &pluginv1.AwaitRequest{ExecutionId: id})
	switch {
	case err == nil, status.Code(err) == codes.Unimplemented:
		return false
	case ctx.Err() != nil, status.Code(err) == codes.DeadlineExceeded:
		// The plugin got our deadline too and may report it first.
		p.killHung(pr, module)
		return true
	case pr.exited() || isConnectionLoss(err):
		p.discard(pr)
	default:
		p.logger.Debug("waiting for a cancelled module to stop", "module", module, "error", err)
	}
	return false
}

func streamName(s pluginv1.Stream) string {
	switch s {
	case pluginv1.Stream_STREAM_STDOUT:
		return "stdout"
	case pluginv1.Stream_STREAM_STDERR:
		return "stderr"
	default:
		return "log"
	}
}

// Close stops the plugin process (asking it to shut down first, then
// killing it) and waits until it is gone. Calls in flight fail.
func (p *Plugin) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	pr := p.cur
	p.cur = nil
	if pr != nil {
		p.dropSession(pr)
	}
	p.mu.Unlock()
	if pr != nil {
		pr.kill()
	}
	return nil
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// abbreviate is s cut to at most n bytes (at a rune boundary) with "..."
// in place of the rest, for messages that quote what a plugin sent.
func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
