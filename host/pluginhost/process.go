package pluginhost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/modpipe/modpipe/coordinator"
	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// process is one running plugin process and its connection. A Plugin
// replaces its process after a crash or a kill; a process is never reused
// once dead.
type process struct {
	// tag is the value of ProcessEnv in the process's environment, which
	// the commands it starts inherit.
	tag      string
	client   *goplugin.Client
	rpc      pluginv1.PluginClient
	conn     *grpc.ClientConn
	run      *cmdRunner
	brokerID uint32
	// done is closed by go-plugin once the process has exited and its
	// stderr has been read to the end.
	done <-chan struct{}
	tail *tailBuffer
	// serveWG tracks the goroutine serving the Host service on the broker.
	serveWG  sync.WaitGroup
	killOnce sync.Once
	// hung, set before the host kills the process as hung, says why: the
	// other modules it was running die with it, through no fault of
	// their own, and their errors say so.
	hung atomic.Pointer[string]
	// handshake is the line the plugin printed to complete go-plugin's
	// handshake, once it did.
	handshake atomic.Pointer[string]
	// discarded is set once the host let go of the process (it died, or
	// the host killed it): the calls it cuts short meanwhile are its
	// loss, whatever the process still answers while it goes.
	discarded atomic.Bool

	runMu sync.Mutex
	// running counts the calls running each module in the process.
	running map[string]int

	// startMu guards run while go-plugin starts the process, and
	// abandoned: a start given up on (its context ended) must stop the
	// process itself, as go-plugin's Kill waits for the whole start.
	startMu   sync.Mutex
	abandoned bool
}

// abandon stops a start given up on: the process when it exists, and any
// process the start has yet to make.
func (pr *process) abandon() {
	pr.startMu.Lock()
	pr.abandoned = true
	r := pr.run
	pr.startMu.Unlock()
	if r != nil {
		_ = r.Kill(context.Background())
	}
}

// begin and end bracket a call that runs module in the process.
func (pr *process) begin(module string) {
	pr.runMu.Lock()
	if pr.running == nil {
		pr.running = map[string]int{}
	}
	pr.running[module]++
	pr.runMu.Unlock()
}

func (pr *process) end(module string) {
	pr.runMu.Lock()
	if pr.running[module]--; pr.running[module] <= 0 {
		delete(pr.running, module)
	}
	pr.runMu.Unlock()
}

// runningModules lists, sorted, the modules the process is running (or
// was running when it died).
func (pr *process) runningModules() []string {
	pr.runMu.Lock()
	defer pr.runMu.Unlock()
	return slices.Sorted(maps.Keys(pr.running))
}

// hungReason returns why the host killed the process as hung, or "".
func (pr *process) hungReason() string {
	if r := pr.hung.Load(); r != nil {
		return *r
	}
	return ""
}

// startTimeout bounds a plugin's start, up to its handshake line
// (go-plugin's default, said in the error when it runs out).
const startTimeout = time.Minute

// exitStatus is how the process ended, or "" while it runs.
func (pr *process) exitStatus() string {
	if pr.run == nil {
		return ""
	}
	return pr.run.exitStatus()
}

// pid is the operating system's process id of the plugin.
func (pr *process) pid() int { return pr.run.pid }

// exited reports whether the process has exited.
func (pr *process) exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return pr.client.Exited()
	}
}

// kill stops the process (go-plugin asks it to shut down, then kills it)
// and waits for everything that belongs to it.
// Concurrent callers all return once it is done.
func (pr *process) kill() {
	pr.killOnce.Do(func() {
		pr.client.Kill()
		pr.serveWG.Wait()
	})
}

// hostPlugin is the go-plugin face of the host side: when the Plugin
// service is dispensed it starts the Host service on the broker, once per
// process.
type hostPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	p  *Plugin
	pr *process
}

func (h *hostPlugin) GRPCServer(*goplugin.GRPCBroker, *grpc.Server) error {
	return errors.New("the host does not serve plugins")
}

func (h *hostPlugin) GRPCClient(doneCtx context.Context, broker *goplugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	h.pr.done = doneCtx.Done()
	h.pr.conn = conn
	h.pr.brokerID = broker.NextId()
	hs := &hostService{p: h.p}
	h.pr.serveWG.Add(1)
	go func() {
		defer h.pr.serveWG.Done()
		// Returns when the broker closes, i.e. when the client is killed.
		broker.AcceptAndServe(h.pr.brokerID, func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxSendMsgSize(pluginv1.MaxMessageBytes))
			s := grpc.NewServer(opts...)
			pluginv1.RegisterHostServer(s, hs)
			return s
		})
	}()
	return pluginv1.NewPluginClient(conn), nil
}

// startProcess starts the plugin binary and completes the handshake.
func (p *Plugin) startProcess(ctx context.Context, exe *os.File) (*process, error) {
	pr := &process{tail: newTailBuffer(tailLines), tag: fmt.Sprintf("%d.%s.%d", os.Getpid(), p.spec.Name, time.Now().UnixNano())}
	logger := p.logger
	stdio := &lineLogger{tail: pr.tail, log: func(s string) { logger.Debug("plugin output", "line", s) }}
	// What the plugin prints to its own stdout after the handshake
	// belongs to no module: shown at the default level, or a plugin
	// author's fmt.Println would vanish without a trace.
	warnStdout := func(s string) {
		logger.Warn("plugin wrote to its stdout, which belongs to no module (send module output as the module's output lines: m.Stdout() or m.Logger() in the Go sdk)", "line", s)
	}
	// One for go-plugin's stdio stream, one for the process's own stdout
	// past the handshake: each cuts its own bytes into lines.
	stdout := &lineLogger{tail: pr.tail, log: warnStdout}
	rawStdout := &lineLogger{tail: pr.tail, log: warnStdout}
	hp := &hostPlugin{p: p, pr: pr}
	id := p.opts.TLS
	if id == nil {
		var err error
		if id, err = NewTLSIdentity(); err != nil {
			return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonExec, Msg: "could not make the host's TLS certificate for the plugin", Err: err}
		}
	}
	pr.client = goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			pluginv1.ProtocolVersion: {pluginv1.PluginName: hp},
		},
		SkipHostEnv: true,
		// go-plugin passes a template command carrying only its own
		// environment (cookie, protocol versions, socket dir, ...). Ours
		// comes first so the spec's entries win over the host's (exec
		// keeps the last of duplicate keys) and go-plugin's and the mTLS
		// certificate win over both. Stdin stays empty: a plugin never
		// reads the host's terminal.
		RunnerFunc: func(l hclog.Logger, tmpl *exec.Cmd, socketDir string) (runner.Runner, error) {
			cmd := exec.Command(p.spec.Path, p.spec.Args...)
			if exe != nil {
				// The checked copy; the process still sees the path as
				// its name (argv[0]).
				cmd.Path = execPath(exe)
			}
			cmd.Env = append(append(append(pluginLogEnv(logger), p.spec.Env...), tmpl.Env...), clientCertEnv+"="+string(id.certPEM), ProcessEnv+"="+pr.tag,
				// The plugin's own SIGTERM-to-SIGKILL wait must end
				// within the grace, or a stubborn command gets the
				// whole plugin killed, with every bystander in it.
				pluginv1.StopGraceEnv+"="+strconv.FormatInt(p.opts.KillGrace.Milliseconds(), 10))
			cmd.SysProcAttr = pluginProcAttr()
			r, err := newCmdRunner(l, cmd, pr.tag)
			if err != nil {
				return nil, err
			}
			// go-plugin reads the handshake line from the process's
			// stdout and discards the rest; a plugin in another language
			// has no stdio stream to move its prints to, so what follows
			// the handshake is logged as a Go plugin's os.Stdout is.
			r.stdout = &afterHandshake{r: r.stdout, w: rawStdout, done: func(line string) { pr.handshake.Store(&line) }}
			pr.startMu.Lock()
			defer pr.startMu.Unlock()
			if pr.abandoned {
				// go-plugin made the socket folder for this start and
				// forgets it when the runner is refused.
				_ = os.RemoveAll(socketDir)
				return nil, errors.New("the start was given up on")
			}
			pr.run = r
			return r, nil
		},
		UnixSocketConfig: &goplugin.UnixSocketConfig{TempDir: p.opts.SocketRoot},
		StartTimeout:     startTimeout,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		// AutoMTLS done by hand (see NewTLSIdentity): the same exchange
		// on the wire, with a cheaper certificate. go-plugin still reads
		// the plugin's certificate from the handshake line into
		// TLSConfig's roots.
		AutoMTLS:  false,
		TLSConfig: id.clientConfig(),
		// No broker multiplexing: plugins in other languages rarely
		// support it, and go-plugin refuses a plugin that does not.
		GRPCBrokerMultiplex: false,
		Managed:             false,
		Logger:              newQuietStderr(logger, p.spec.Path),
		// The process's stderr, line by line: the crash tail, and the
		// host's log (not go-plugin's, see stderrLog).
		Stderr: &lineLogger{tail: pr.tail, log: (&stderrLog{log: logger}).line},
		// What the plugin writes to os.Stdout (and os.Stderr, for plugins
		// that leave go-plugin's redirection in place) after the handshake.
		// Never the host's terminal.
		SyncStdout: stdout,
		SyncStderr: stdio,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pluginv1.MaxMessageBytes)),
			grpc.WithInitialWindowSize(pluginv1.StreamWindowBytes),
			grpc.WithInitialConnWindowSize(pluginv1.ConnWindowBytes),
		},
	})

	type started struct {
		conn goplugin.ClientProtocol
		rpc  pluginv1.PluginClient
		err  error
	}
	ch := make(chan started, 1)
	go func() {
		rpcClient, err := pr.client.Client()
		if err != nil {
			ch <- started{err: err}
			return
		}
		raw, err := rpcClient.Dispense(pluginv1.PluginName)
		if err != nil {
			ch <- started{conn: rpcClient, err: err}
			return
		}
		ch <- started{conn: rpcClient, rpc: raw.(pluginv1.PluginClient)}
	}()
	var s started
	select {
	case s = <-ch:
	case <-ctx.Done():
		// go-plugin's Kill waits for the start it would cut short (it
		// holds the client's lock throughout, up to startTimeout): the
		// process is stopped here instead, which ends the handshake.
		pr.abandon()
		s = <-ch
		// Kill does nothing before go-plugin has started the process,
		// and the start then runs to its end: a connected plugin whose
		// broker, and so the Host service's goroutine, would live on.
		// Stop what it left: the connection (its broker with it) and
		// the process.
		if s.conn != nil {
			_ = s.conn.Close()
		}
		pr.client.Kill()
		pr.abandon()
		pr.serveWG.Wait()
		return nil, &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Reason: ReasonExec, Msg: "gave up waiting for the plugin to start", Err: ctx.Err()}
	}
	if s.err != nil {
		pr.kill()
		return nil, p.handshakeError(s.err, pr)
	}
	pr.rpc = s.rpc
	return pr, nil
}

// handshakeError explains a failed go-plugin start.
func (p *Plugin) handshakeError(err error, pr *process) *StartError {
	e := &StartError{Plugin: p.spec.Name, Path: p.spec.Path, Err: err}
	msg := err.Error()
	lower := strings.ToLower(msg) // go-plugin's wording varies in case between versions
	badHandshake := false         // no usable handshake line: say what came instead
	switch {
	case strings.Contains(lower, "incompatible api version"):
		e.Reason = ReasonProtocolVersion
		e.Msg = "the plugin speaks another version of the modpipe plugin protocol; rebuild it against this modpipe's sdk or use a matching host"
		e.Expected = "protocol version " + strconv.Itoa(pluginv1.ProtocolVersion)
		e.Found = "protocol version " + versionFromMessage(msg)
		e.Err = nil
	case strings.Contains(lower, "incompatible core api version"):
		e.Reason = ReasonHandshake
		e.Msg = "the plugin was built with an incompatible version of hashicorp/go-plugin"
	case strings.Contains(lower, "unrecognized remote plugin message"), strings.Contains(lower, "exited before we could connect"),
		strings.Contains(lower, "timeout while waiting for plugin to start"):
		e.Msg = "it is not a modpipe plugin, or it failed before completing the handshake"
		e.Found = "no handshake"
		if _, rest, ok := strings.Cut(msg, "emote plugin message: "); ok {
			e.Found = fmt.Sprintf("stdout line %q", firstLine(rest))
			if firstLine(rest) == "" {
				e.Found = "nothing on stdout"
			}
		}
		if strings.Contains(lower, "timeout while waiting for plugin to start") {
			e.Msg = fmt.Sprintf("it did not complete the handshake within %s of starting", startTimeout)
		}
		badHandshake = true
	case strings.Contains(lower, "error parsing core protocol version"), strings.Contains(lower, "error parsing protocol version"),
		strings.Contains(lower, "unknown address type"), strings.Contains(lower, "unsupported plugin protocol"),
		strings.Contains(lower, "error parsing server cert"):
		// The first line on stdout had the handshake's shape (fields
		// between |) but not its content: most often the plugin, or a
		// library it loads, printed to stdout as it started.
		e.Msg = "its first line on stdout is not a valid handshake: a plugin must not print to stdout before the handshake (log to stderr), or it is not a modpipe plugin"
		if strings.Contains(lower, "error parsing server cert") {
			// The line had all its fields: the plugin wrote it, wrongly.
			e.Msg = "the certificate in its handshake line could not be read: the sixth field must be the plugin's TLS certificate, DER bytes in base64 without padding (Go's base64.RawStdEncoding; in Python strip the trailing '=')"
		}
		e.Found = "a malformed handshake line (" + firstLine(msg) + ")"
		badHandshake = true
	default:
		e.Reason = ReasonExec
		e.Msg = "could not run the plugin binary"
	}
	if badHandshake {
		e.Reason = ReasonHandshake
		e.Expected = fmt.Sprintf("a go-plugin gRPC handshake with %s=%s", pluginv1.MagicCookieKey, pluginv1.MagicCookieValue)
		e.Err = nil
		if st := pr.exitStatus(); st != "" {
			e.Found += ", then the process ended (" + st + ")"
		}
		// What a plugin says on its way down is most often the reason
		// (a missing setting, a panic in its setup).
		if tail := strings.TrimRight(pr.tail.String(), "\n"); tail != "" {
			e.Found += "; its stderr ends with:\n" + indent(tail)
		}
	}
	return e
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// indent indents every line of s, to set a plugin's own lines apart from
// the host's message.
func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// versionFromMessage digs the plugin's version out of go-plugin's
// "Incompatible API version with plugin. Plugin version: 2, Client
// versions: [1]".
func versionFromMessage(msg string) string {
	_, rest, ok := strings.Cut(strings.ToLower(msg), "plugin version: ")
	if !ok {
		return "unknown"
	}
	v, _, _ := strings.Cut(rest, ",")
	return strings.TrimSpace(v)
}

// probeTimeout bounds answers' call.
const probeTimeout = 2 * time.Second

// answers reports whether the process still answers calls on its
// connection. A call that ended with a status a broken connection also
// gives (Unavailable, Internal) may have ended that way by the plugin's
// own doing, or by a message the host could not decode: then the plugin
// is alive, and only that call failed. Any answer to a health check,
// even "not implemented", comes from a live plugin.
func (pr *process) answers() bool {
	if pr.conn == nil || pr.exited() || pr.discarded.Load() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	_, err := healthpb.NewHealthClient(pr.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: goplugin.GRPCServiceName})
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Canceled, codes.DeadlineExceeded:
		return false
	}
	return !pr.exited()
}

// handshakeWithoutCert returns the plugin's handshake line when it has no
// certificate (its sixth field): a plugin that serves without TLS, which
// the host cannot talk to.
func (pr *process) handshakeWithoutCert() (string, bool) {
	line := pr.handshake.Load()
	if line == nil {
		return "", false
	}
	fields := strings.Split(*line, "|")
	return *line, len(fields) >= 5 && (len(fields) < 6 || strings.TrimSpace(fields[5]) == "")
}

// lost reports whether a call of pr that ended with err ended because
// the process is gone or going (it died, or the host let go of it),
// rather than by the plugin's own doing.
func (pr *process) lost(err error) bool {
	return pr.exited() || (isConnectionLoss(err) && !(mayBePlugins(err) && pr.answers()))
}

// mayBePlugins reports whether err, which isConnectionLoss takes for a
// lost connection, may instead be a live plugin's own status (or a
// message of its the host could not decode), which answers then tells.
// Canceled never is: only the host cancels its calls.
func mayBePlugins(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal:
		return true
	}
	return false
}

// isConnectionLoss reports whether a gRPC error may mean the plugin's
// connection went away (the process died or is dying); answers tells.
func isConnectionLoss(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.Internal:
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// cmdRunner runs the plugin process for go-plugin. It is go-plugin's
// default runner plus what we need: the pid, and how the process ended.
type cmdRunner struct {
	logger         hclog.Logger
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	pid            int
	// tag is the process's ProcessEnv value, which whatever it starts
	// inherits.
	tag string
	// cleaned is closed once what the process left behind has been
	// killed after it exited (see cleanUp).
	cleaned chan struct{}

	mu     sync.Mutex
	status string // "exit status 3", "signal: killed"; set once waited
	// stopped is set by a Kill that came before Start, which then
	// starts nothing. mu also guards cmd.Process until Start returns.
	stopped bool
	// waited is closed once the process has been waited for.
	waited chan struct{}
}

var _ runner.Runner = (*cmdRunner)(nil)

func newCmdRunner(logger hclog.Logger, cmd *exec.Cmd, tag string) (*cmdRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &cmdRunner{logger: logger, cmd: cmd, stdout: stdout, stderr: stderr, tag: tag, waited: make(chan struct{}), cleaned: make(chan struct{})}, nil
}

func (r *cmdRunner) Start(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		close(r.cleaned)
		return errors.New("the plugin was stopped before it started")
	}
	if err := r.cmd.Start(); err != nil {
		close(r.cleaned)
		return err
	}
	r.pid = r.cmd.Process.Pid
	r.logger.Debug("plugin started", "path", r.cmd.Args[0], "pid", r.pid)
	go r.cleanUp() // Wait waits for it
	return nil
}

// cleanUp kills what the plugin process leaves behind once it has exited,
// however it ended: its process group and whatever carries its tag (a
// command that left its own group). Left alive, a child holding the
// plugin's stdout or stderr kept go-plugin from ever waiting for the
// plugin (it reads both to their end first), which hung the host in
// the plugin's start or stop, deaf to signals; and a daemon a module
// started would outlive the run.
func (r *cmdRunner) cleanUp() {
	defer close(r.cleaned)
	if !awaitExit(r.pid) {
		return
	}
	killGroup(r.cmd)
	if r.tag == "" {
		return
	}
	if n := killTagged(r.tag); n > 0 {
		r.logger.Warn("killed processes the plugin left running", "count", n, "pid", r.pid)
	}
}

func (r *cmdRunner) Wait(context.Context) error {
	// The zombie is reaped only after cleanUp, so the pid and the process
	// group it kills cannot be another's.
	<-r.cleaned
	err := r.cmd.Wait()
	r.mu.Lock()
	if r.cmd.ProcessState != nil {
		r.status = r.cmd.ProcessState.String()
	}
	r.mu.Unlock()
	close(r.waited)
	return err
}

// exitStatus is how the process ended, or "" while it runs.
func (r *cmdRunner) exitStatus() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// stopGrace is how long a plugin being killed has between SIGTERM and
// SIGKILL: long enough to kill its commands' process groups, which
// modpipe's plugins do on SIGTERM, and short because it is hung or
// already being shut down.
const stopGrace = time.Second

// Kill stops the plugin process: SIGTERM, then SIGKILL if it is still
// there after stopGrace (at once where there are no signals, on Windows).
func (r *cmdRunner) Kill(context.Context) error {
	r.mu.Lock()
	p := r.cmd.Process
	if p == nil {
		r.stopped = true
	}
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-r.waited:
			return nil
		case <-t.C:
		}
	} else if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *cmdRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *cmdRunner) Stderr() io.ReadCloser { return r.stderr }
func (r *cmdRunner) Name() string          { return r.cmd.Args[0] }
func (r *cmdRunner) ID() string            { return strconv.Itoa(r.pid) }

// afterHandshake passes a plugin's stdout through to go-plugin, which
// takes its first line as the handshake, and copies every byte after
// that first line to w.
type afterHandshake struct {
	r    io.ReadCloser
	w    io.Writer
	past bool // the handshake line has ended
	// line collects the handshake line; done gets it once it ended.
	line []byte
	done func(string)
}

func (a *afterHandshake) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	b := p[:n]
	if !a.past {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(a.line) < 64*1024 {
				a.line = append(a.line, b...)
			}
			return n, err
		}
		a.past = true
		a.line = append(a.line, b[:i]...)
		if a.done != nil {
			a.done(strings.TrimSpace(string(a.line)))
		}
		b = b[i+1:]
	}
	if len(b) > 0 {
		_, _ = a.w.Write(b)
	}
	return n, err
}

func (a *afterHandshake) Close() error { return a.r.Close() }

func (r *cmdRunner) Diagnose(context.Context) string {
	return "the binary may be built for another OS or architecture, lack execute permission, or not be a modpipe plugin"
}

func (r *cmdRunner) PluginToHost(n, a string) (string, string, error) { return n, a, nil }
func (r *cmdRunner) HostToPlugin(n, a string) (string, string, error) { return n, a, nil }

// tailLines is how many stderr lines a CrashError carries (more when a
// panic's stack is in them).
const tailLines = 20

// tailBuffer keeps the last lines written to a plugin's stderr, and once a
// panic or fatal error starts, the lines from its first line on, so the
// panic message survives a long stack.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
	panic []string
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.panic == nil && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		t.panic = []string{}
	}
	if t.panic != nil && len(t.panic) < 4*t.max {
		t.panic = append(t.panic, line)
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.panic != nil {
		return strings.Join(t.panic, "\n")
	}
	return strings.Join(t.lines, "\n")
}

// lineLogger splits what is written into lines for the tail and, when log
// is set, the log.
type lineLogger struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	tail *tailBuffer
	log  func(string)
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			if w.buf.Len() > 64*1024 { // a runaway line: take it in pieces
				w.line(string(w.buf.Next(64 * 1024)))
				continue
			}
			return len(b), nil
		}
		line := strings.TrimSuffix(string(w.buf.Next(i + 1)[:i]), "\r")
		w.line(line)
	}
}

func (w *lineLogger) line(s string) {
	w.tail.add(s)
	if w.log != nil {
		w.log(s)
	}
}

// hostService serves the Host service to one plugin process.
type hostService struct {
	pluginv1.UnimplementedHostServer
	p *Plugin
}

// GetResult implements pluginv1.HostServer.
func (h *hostService) GetResult(ctx context.Context, req *pluginv1.GetResultRequest) (*pluginv1.GetResultResponse, error) {
	caller, dep := req.GetCaller(), req.GetModule()
	if !h.p.mayRead(caller, dep) {
		return nil, status.Errorf(codes.PermissionDenied, "module %q is not running in plugin %q with %q as a dependency", caller, h.p.spec.Name, dep)
	}
	if h.p.opts.Results == nil {
		return nil, status.Errorf(codes.Unimplemented, "this host does not serve dependency results")
	}
	env, err := h.p.opts.Results(ctx, caller, dep)
	switch {
	case errors.Is(err, ErrNotDependency):
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ErrNotFinished):
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	case err != nil:
		return nil, status.Error(codes.Unknown, err.Error())
	case env == nil:
		return nil, status.Errorf(codes.FailedPrecondition, "no result for %q yet", dep)
	}
	b, err := encodeEnvelope(env)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode the envelope of %q: %v", dep, err)
	}
	return &pluginv1.GetResultResponse{EnvelopeJson: string(b)}, nil
}

func encodeEnvelope(env *coordinator.Envelope) ([]byte, error) {
	return jsonMarshal(env)
}

// LogLevelEnv tells a plugin the level to log at: the sdk's process
// logger and the Debug and Trace lines of its modules' loggers follow it.
const LogLevelEnv = "MODPIPE_PLUGIN_LOG_LEVEL"

// pluginLogEnv is the host's environment for a plugin, with LogLevelEnv
// set to the host's own level when that is debug or trace, so
// --log-level debug reaches the plugins too. A value the user exported
// wins; at the default levels a plugin keeps its own (info).
func pluginLogEnv(logger hclog.Logger) []string {
	env := os.Environ()
	if _, set := os.LookupEnv(LogLevelEnv); set {
		return env
	}
	if l := logger.GetLevel(); l != hclog.NoLevel && l <= hclog.Debug {
		env = append(env, LogLevelEnv+"="+l.String())
	}
	return env
}
