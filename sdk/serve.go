package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// Plugin is a plugin's identity and the module kinds it offers.
type Plugin struct {
	// Name is the plugin's name, e.g. "shell". Modules use it as the first
	// part of their kind: module "shell.exec" "build".
	Name string
	// Version is the plugin's own version, e.g. "0.1.0".
	Version string
	Kinds   []Kind
	// Logger is for the plugin's own diagnostics (not module output). It
	// must write to stderr, never stdout. Nil means JSON to stderr at the
	// level in MODPIPE_PLUGIN_LOG_LEVEL (default info), which the host
	// forwards into its own log.
	Logger hclog.Logger
}

// Serve serves the plugin to the modpipe host and returns when the host
// is done with it. Call it from main. Started by hand (without the host),
// it explains that it is a plugin and exits with status 1; a Plugin that
// is declared wrongly exits with status 1 and a message.
func Serve(p Plugin) {
	srv, err := newServer(p)
	if err != nil {
		fmt.Fprintf(os.Stderr, "plugin %q: %v\n", p.Name, err)
		os.Exit(1)
	}
	if os.Getenv(pluginv1.MagicCookieKey) != pluginv1.MagicCookieValue {
		// go-plugin's own message here speaks of plugins in general; a
		// user who ran the binary needs to know where it goes instead.
		fmt.Fprintf(os.Stderr, "%s is a modpipe plugin (%s). It is started by the modpipe host (host run pipeline.hcl), not by hand: put it in the plugins/ folder next to the host binary, in MODPIPE_PLUGIN_PATH, or name it in a plugin block of the pipeline.\n", filepath.Base(os.Args[0]), p.Name)
		os.Exit(1)
	}
	stop := startCPUProfile(srv.logger)
	defer stop()
	goplugin.Serve(srv.serveConfig())
}

// maxValueBytes is the largest result value a module can return: the
// gRPC message that carries it to the host is at most
// pluginv1.MaxMessageBytes, and the rest of it (type, error, tail) needs
// room too.
const maxValueBytes = pluginv1.MaxMessageBytes - 1<<20

// logLevelEnv is the level the plugin logs at (hclog names: trace, debug,
// info, ...). The host sets it to its own level when that is debug or
// trace (pluginhost.LogLevelEnv).
const logLevelEnv = "MODPIPE_PLUGIN_LOG_LEVEL"

// sessionsEnv set to "off" makes the plugin run every module through an
// Execute call of its own instead of the Session stream: slower, for
// telling a problem of the stream apart from one of the module, and for
// testing hosts against plugins that do not serve sessions.
const sessionsEnv = "MODPIPE_PLUGIN_SESSIONS"

// cpuProfileEnv names a file prefix under which a plugin writes a CPU
// profile of its whole life (PREFIX.PID, for go tool pprof). It is for
// finding where a plugin spends its time in a real run, beside the host's
// own profile; unset (the default), nothing is profiled.
const cpuProfileEnv = "MODPIPE_PLUGIN_CPUPROFILE"

// startCPUProfile starts the profile cpuProfileEnv asks for and returns
// what stops it.
func startCPUProfile(logger hclog.Logger) (stop func()) {
	prefix := os.Getenv(cpuProfileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
	if err != nil {
		logger.Warn("cannot write the CPU profile", "error", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		logger.Warn("cannot start the CPU profile", "error", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// streamWorkers is how many goroutines serve calls: more than the host's
// default parallelism, so a busy plugin rarely starts a fresh one.
const streamWorkers = 16

func (s *server) serveConfig() *goplugin.ServeConfig {
	return &goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{
			MagicCookieKey:   pluginv1.MagicCookieKey,
			MagicCookieValue: pluginv1.MagicCookieValue,
		},
		VersionedPlugins: map[int]goplugin.PluginSet{
			pluginv1.ProtocolVersion: {pluginv1.PluginName: &grpcPlugin{srv: s}},
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts,
				grpc.MaxRecvMsgSize(pluginv1.MaxMessageBytes),
				grpc.MaxSendMsgSize(pluginv1.MaxMessageBytes),
				grpc.InitialWindowSize(pluginv1.StreamWindowBytes),
				grpc.InitialConnWindowSize(pluginv1.ConnWindowBytes),
				// Without workers every call gets a new goroutine whose
				// stack grows (morestack, copystack) through the gRPC and
				// module call chain: 12% of the plugin's CPU in a no-op
				// run. Workers keep their grown stacks; a call beyond
				// them still gets its own goroutine.
				grpc.NumStreamWorkers(streamWorkers))
			return grpc.NewServer(opts...)
		},
		Logger:      s.logger,
		TLSProvider: autoMTLS,
	}
}

// grpcPlugin adapts server to go-plugin.
type grpcPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	srv *server
}

func (g *grpcPlugin) GRPCServer(broker *goplugin.GRPCBroker, s *grpc.Server) error {
	g.srv.broker = broker
	pluginv1.RegisterPluginServer(s, g.srv)
	return nil
}

func (g *grpcPlugin) GRPCClient(context.Context, *goplugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("the sdk serves plugins; it is not a plugin client")
}

// server implements the Plugin service.
type server struct {
	pluginv1.UnimplementedPluginServer

	name, version string
	kinds         []*kindDef
	defaultKind   *kindDef
	logger        hclog.Logger
	broker        *goplugin.GRPCBroker // set once before serving

	// sessions is whether Describe offers the Session RPC; see sessionsEnv.
	sessions bool
	// moduleLogLevel is the level of Module.Logger.
	moduleLogLevel hclog.Level
	// stopGrace is how long the host gives a cancelled module to stop
	// (pluginv1.StopGraceEnv); zero when it did not say.
	stopGrace time.Duration
	// outputBatches is whether the host takes several output lines in one
	// message (DescribeRequest.output_batches, set at every Describe).
	outputBatches atomic.Bool

	// maxValue is the largest result value sent, maxValueBytes but in
	// tests.
	maxValue int

	// stderr is the process's real stderr; see restoreStderr.
	stderr     *os.File
	stderrOnce sync.Once

	mu      sync.Mutex
	hostCli map[uint32]*hostConn     // one connection per broker id
	running map[string]chan struct{} // execution id -> closed when done
}

func newServer(p Plugin) (*server, error) {
	if p.Name == "" {
		return nil, errors.New("sdk.Plugin.Name is empty")
	}
	if len(p.Kinds) == 0 {
		return nil, errors.New("sdk.Plugin.Kinds is empty: declare at least one kind with sdk.NewKind")
	}
	s := &server{
		name:     p.Name,
		version:  p.Version,
		logger:   p.Logger,
		hostCli:  map[uint32]*hostConn{},
		running:  map[string]chan struct{}{},
		stderr:   os.Stderr,
		maxValue: maxValueBytes,
		// Off only on request: it is for telling a problem of the Session
		// stream apart from one of the module.
		sessions: os.Getenv(sessionsEnv) != "off",
	}
	if ms, err := strconv.ParseInt(os.Getenv(pluginv1.StopGraceEnv), 10, 64); err == nil && ms > 0 {
		s.stopGrace = time.Duration(ms) * time.Millisecond
	}
	level := hclog.LevelFromString(os.Getenv(logLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	// Module loggers show Info and above as module output, and Debug
	// and Trace only when asked to (the host sets logLevelEnv at its own
	// --log-level debug or trace).
	s.moduleLogLevel = min(level, hclog.Info)
	if s.logger == nil {
		s.logger = hclog.New(&hclog.LoggerOptions{
			Name:       p.Name,
			Level:      level,
			Output:     os.Stderr, // the real stderr: go-plugin later swaps os.Stderr
			JSONFormat: true,      // go-plugin's client parses JSON lines back into log entries
		})
	}
	seen := map[string]bool{}
	for _, k := range p.Kinds {
		d := k.def()
		if seen[d.name] {
			return nil, fmt.Errorf("kind %q is declared twice", d.name)
		}
		seen[d.name] = true
		if d.isDefault {
			if s.defaultKind != nil {
				return nil, fmt.Errorf("kinds %q and %q are both marked sdk.Default(); mark at most one", s.defaultKind.name, d.name)
			}
			s.defaultKind = d
		}
		s.kinds = append(s.kinds, d)
	}
	if s.defaultKind == nil {
		s.defaultKind = s.kinds[0]
	}
	return s, nil
}

func (s *server) kind(name string) (*kindDef, error) {
	if name == "" {
		return s.defaultKind, nil
	}
	for _, k := range s.kinds {
		if k.name == name {
			return k, nil
		}
	}
	names := make([]string, len(s.kinds))
	for i, k := range s.kinds {
		names[i] = k.name
	}
	return nil, fmt.Errorf("plugin %q has no module kind %q (it has: %s)", s.name, name, strings.Join(names, ", "))
}

// restoreStderr points os.Stderr back at the process's real stderr.
// go-plugin redirects it into a gRPC stream that loses the last lines when
// the process dies, which are exactly the lines that explain a crash (a
// message before os.Exit, say). The host reads the real stderr directly
// and keeps its tail for the crash error. Called at the top of every RPC,
// which also orders the write before any module code reads os.Stderr.
func (s *server) restoreStderr() {
	s.stderrOnce.Do(func() { os.Stderr = s.stderr })
}

// Describe implements pluginv1.PluginServer.
func (s *server) Describe(_ context.Context, req *pluginv1.DescribeRequest) (*pluginv1.DescribeResponse, error) {
	s.restoreStderr()
	s.outputBatches.Store(req.GetOutputBatches())
	if id := req.GetHostBrokerId(); id != 0 {
		// Take the host's result service's address now: the broker
		// forgets an undialled id after a few seconds, long before a
		// module might first ask for a dependency's result. The
		// connection itself waits for that first request (see hostConn).
		if _, err := s.hostConn(id); err != nil {
			s.logger.Warn("cannot reach the host's result service; sdk.Result will fail", "error", err)
		}
	}
	resp := &pluginv1.DescribeResponse{Name: s.name, Version: s.version, ProtocolVersion: pluginv1.ProtocolVersion, Sessions: s.sessions}
	for _, k := range s.kinds {
		mk := k.describe()
		mk.Default = k == s.defaultKind
		resp.Kinds = append(resp.Kinds, mk)
	}
	return resp, nil
}

// Validate implements pluginv1.PluginServer.
func (s *server) Validate(_ context.Context, req *pluginv1.ValidateRequest) (*pluginv1.ValidateResponse, error) {
	s.restoreStderr()
	return s.validate(req)
}

// ValidateMany implements pluginv1.PluginServer: Validate for each
// request, the answers in order. A kind the plugin does not have fails
// the whole call, as it fails a Validate call.
func (s *server) ValidateMany(_ context.Context, req *pluginv1.ValidateManyRequest) (*pluginv1.ValidateManyResponse, error) {
	s.restoreStderr()
	resp := &pluginv1.ValidateManyResponse{Responses: make([]*pluginv1.ValidateResponse, 0, len(req.GetRequests()))}
	for _, r := range req.GetRequests() {
		v, err := s.validate(r)
		if err != nil {
			return nil, err
		}
		resp.Responses = append(resp.Responses, v)
	}
	return resp, nil
}

// validate answers one Validate question.
func (s *server) validate(req *pluginv1.ValidateRequest) (*pluginv1.ValidateResponse, error) {
	k, err := s.kind(req.GetKind())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	_, errs := k.decodeConfig(req.GetConfigJson())
	resp := &pluginv1.ValidateResponse{}
	for _, e := range errs {
		if e.stack != "" {
			s.logger.Error("config check panicked", "kind", k.name, "panic", e.detail, "stack", e.stack)
		}
		resp.Diagnostics = append(resp.Diagnostics, &pluginv1.Diagnostic{
			Severity:  pluginv1.Severity_SEVERITY_ERROR,
			Summary:   e.summary,
			Detail:    e.detail,
			Attribute: e.path,
		})
	}
	return resp, nil
}

// Await implements pluginv1.PluginServer.
func (s *server) Await(ctx context.Context, req *pluginv1.AwaitRequest) (*pluginv1.AwaitResponse, error) {
	s.mu.Lock()
	done := s.running[req.GetExecutionId()]
	s.mu.Unlock()
	if done == nil {
		return &pluginv1.AwaitResponse{}, nil
	}
	select {
	case <-done:
		return &pluginv1.AwaitResponse{}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// Execute implements pluginv1.PluginServer.
func (s *server) Execute(req *pluginv1.ExecuteRequest, stream grpc.ServerStreamingServer[pluginv1.ExecuteEvent]) error {
	s.restoreStderr()
	result := s.serveModule(stream.Context(), req, stream.Send)
	return stream.Send(&pluginv1.ExecuteEvent{Event: &pluginv1.ExecuteEvent_Result{Result: result}})
}

// Session implements pluginv1.PluginServer: every module the host starts
// on the stream runs in a goroutine of its own, as an Execute call would,
// and its events go back on the same stream tagged with its execution id.
func (s *server) Session(stream grpc.BidiStreamingServer[pluginv1.SessionRequest, pluginv1.SessionEvent]) error {
	s.restoreStderr()
	ctx, cancelAll := context.WithCancel(stream.Context())
	var (
		sendMu  sync.Mutex // a gRPC stream's Send is not safe for concurrent use
		mu      sync.Mutex
		cancels = map[string]context.CancelFunc{}
		modules sync.WaitGroup
		// work hands a module to a worker goroutine idle since its last
		// one. A fresh goroutine per module grew its stack through the
		// module's deep call chain every time (copystack was 18% of the
		// shell plugin's CPU in the bench's /bin/true DAG); a worker keeps
		// its grown stack. Workers are as many as modules ever ran at once.
		work = make(chan func())
	)
	// The modules end before Session returns: gRPC forbids Send after it.
	defer modules.Wait()
	defer close(work)
	defer cancelAll()
	send := func(id string, ev *pluginv1.ExecuteEvent) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return stream.Send(&pluginv1.SessionEvent{ExecutionId: id, Event: ev})
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			// io.EOF: the host closed its side; anything else: the
			// connection or the host's context ended. Either way no one
			// waits for the modules still running: cancel them.
			return nil
		}
		switch r := msg.GetRequest().(type) {
		case *pluginv1.SessionRequest_Execute:
			req := r.Execute
			id := req.GetExecutionId()
			mctx, cancel := context.WithCancel(ctx)
			mu.Lock()
			cancels[id] = cancel
			mu.Unlock()
			job := func() {
				defer func() {
					mu.Lock()
					delete(cancels, id)
					mu.Unlock()
					cancel()
				}()
				result := s.serveModule(mctx, req, func(ev *pluginv1.ExecuteEvent) error { return send(id, ev) })
				// A failed send means the session is gone; its modules
				// are being cancelled and no one reads the result.
				_ = send(id, &pluginv1.ExecuteEvent{Event: &pluginv1.ExecuteEvent_Result{Result: result}})
			}
			select {
			case work <- job:
			default:
				modules.Go(func() {
					for job := job; job != nil; job = <-work {
						job()
					}
				})
			}
		case *pluginv1.SessionRequest_Cancel:
			mu.Lock()
			cancel := cancels[r.Cancel]
			mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}

// serveModule runs one module for Execute or Session, registered under
// its execution id for Await while it runs, and returns its result.
// Its output goes out through send: a line per event, or several in one
// when the host asked for batches (DescribeRequest.output_batches).
func (s *server) serveModule(ctx context.Context, req *pluginv1.ExecuteRequest, send func(*pluginv1.ExecuteEvent) error) *pluginv1.Result {
	if id := req.GetExecutionId(); id != "" {
		done := make(chan struct{})
		s.mu.Lock()
		s.running[id] = done
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.running, id)
			s.mu.Unlock()
			close(done)
		}()
	}
	sendLine := func(line *pluginv1.OutputLine) error {
		return send(&pluginv1.ExecuteEvent{Event: &pluginv1.ExecuteEvent_Line{Line: line}})
	}
	var sendLines func([]*pluginv1.OutputLine) error
	if s.outputBatches.Load() {
		sendLines = func(lines []*pluginv1.OutputLine) error {
			return send(&pluginv1.ExecuteEvent{Event: &pluginv1.ExecuteEvent_Lines{Lines: &pluginv1.OutputLines{Lines: lines}}})
		}
	}
	return s.execute(ctx, req, newModule(req, s, sendLine, sendLines))
}

// execute runs the module and builds its final result. Every path ends in
// a result: config errors, panics and encoding errors included.
func (s *server) execute(ctx context.Context, req *pluginv1.ExecuteRequest, m *Module) *pluginv1.Result {
	k, err := s.kind(req.GetKind())
	if err != nil {
		m.finish()
		r := failed("", &Failure{Message: err.Error(), Kind: ErrorKindConfig})
		r.FinishedUncancelled = ctx.Err() == nil
		return r
	}
	cfg, errs := k.decodeConfig(req.GetConfigJson())
	if i := slices.IndexFunc(errs, func(e configError) bool { return e.stack != "" }); i >= 0 {
		m.finish()
		s.logger.Error("config check panicked", "module", m.name, "kind", k.name, "panic", errs[i].detail)
		r := failed(k.resultType, &Failure{Message: fmt.Sprintf("module %q: %s", m.name, errs[i].detail), Kind: ErrorKindCrash, Tail: errs[i].stack})
		r.FinishedUncancelled = ctx.Err() == nil
		return r
	}
	if len(errs) > 0 {
		m.finish()
		msgs := make([]string, len(errs))
		for i, e := range errs {
			switch {
			case e.path != "":
				msgs[i] = fmt.Sprintf("attribute %q: %s", e.path, e.detail)
			case e.summary == "Invalid configuration":
				msgs[i] = e.detail // the prefix says as much
			default:
				msgs[i] = e.summary + ": " + e.detail
			}
		}
		r := failed(k.resultType, &Failure{Message: "invalid configuration: " + strings.Join(msgs, "; "), Kind: ErrorKindConfig})
		// A refused config is the module's own failure, whatever
		// cancellation comes after it.
		r.FinishedUncancelled = ctx.Err() == nil
		return r
	}

	if err := ctx.Err(); err != nil {
		// Cancelled before it started (the host gave up while the request
		// was in flight): do not start work no one waits for.
		m.finish()
		return failed(k.resultType, &Failure{Message: "cancelled before the module started", Kind: "cancelled"})
	}
	value, runErr := s.run(context.WithValue(ctx, moduleKey{}, m), k, m, cfg)
	// A failure the host's cancellation did not cause is the module's
	// own, even when the cancellation comes a moment later.
	uncancelled := ctx.Err() == nil
	tail := m.finish()

	var valueJSON string
	if runErr == nil || (value != nil && !reflect.ValueOf(value).IsZero()) {
		b, err := marshalValue(value)
		if err == nil && !utf8.Valid(b) {
			// JSON is UTF-8, and the result travels in a protobuf string,
			// which refuses anything else: sent, it would break the
			// plugin's session and every module running on it. A
			// json.RawMessage (a command's output) carries bytes as they
			// are.
			err = fmt.Errorf("it is not valid UTF-8 (a json.RawMessage or a string with bytes of another encoding), first bad byte at offset %d", invalidUTF8At(b))
		}
		if err == nil && len(b) > s.maxValue {
			// Sent, gRPC would refuse the message and end the session,
			// failing every module running on it as a broken protocol.
			err = fmt.Errorf("it is %d bytes of JSON, over the %d a result can have (one gRPC message to the host is at most %d); write large data to a file and return its path", len(b), s.maxValue, pluginv1.MaxMessageBytes)
		}
		if err != nil {
			return failed(k.resultType, &Failure{
				Message: fmt.Sprintf("encode the result of module %q (kind %q) as JSON: %v", m.name, k.name, err),
				Kind:    ErrorKindEncoding,
				Tail:    tail,
			})
		}
		valueJSON = string(b)
	}
	if runErr != nil {
		f := asFailure(runErr)
		if f.Tail == "" {
			f.Tail = tail
		}
		r := failed(k.resultType, f)
		r.ValueJson = valueJSON
		r.FinishedUncancelled = uncancelled
		return r
	}
	return &pluginv1.Result{Succeeded: true, Type: k.resultType, ValueJson: valueJSON, FinishedUncancelled: uncancelled}
}

// run calls the kind's run function, turning a panic into a failure so
// one bad module does not take down the plugin and every module in it.
func (s *server) run(ctx context.Context, k *kindDef, m *Module, cfg any) (value any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("module panicked", "module", m.name, "kind", k.name, "panic", fmt.Sprint(r))
			value = nil
			err = &Failure{
				Message: fmt.Sprintf("module %q (kind %q) panicked: %v", m.name, k.name, r),
				Kind:    ErrorKindCrash,
				Tail:    fmt.Sprintf("panic: %v\n\n%s", r, debug.Stack()),
			}
		}
	}()
	return k.run(ctx, m, cfg)
}

func asFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		out := *f
		if out.Kind == "" {
			out.Kind = ErrorKindModule
		}
		out.Message = err.Error()
		return &out
	}
	return &Failure{Message: err.Error(), Kind: ErrorKindModule, err: err}
}

func failed(resultType string, f *Failure) *pluginv1.Result {
	return &pluginv1.Result{
		Succeeded: false,
		Type:      resultType,
		// UTF-8 only, as every protobuf string (an error may quote output).
		Error: &pluginv1.Error{Message: strings.ToValidUTF8(f.Message, "\uFFFD"), Kind: f.Kind, Tail: strings.ToValidUTF8(f.Tail, "\uFFFD")},
	}
}

// hostConn is a connection to the host's Host service that connects only
// when first used. Connecting at once put a second TLS handshake (both
// sides' CPU) beside the Describe, Validate and first Execute calls of
// every plugin's start, though most runs never ask for a result.
type hostConn struct {
	client pluginv1.HostClient
	// res holds back the address from the connection until connect.
	res  *manual.Resolver
	once sync.Once
}

// connect lets the connection dial the host.
func (c *hostConn) connect() {
	c.once.Do(func() {
		// The broker's dialer ignores the address; it knows the host's.
		c.res.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: "host"}}})
	})
}

// hostConn returns the not yet connected connection to the host's Host
// service, taking its address from the broker the first time.
func (s *server) hostConn(id uint32) (*hostConn, error) {
	if id == 0 {
		return nil, errors.New("the host did not offer its result service (no broker id in the request)")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.hostCli[id]; ok {
		return c, nil
	}
	if s.broker == nil {
		return nil, errors.New("no connection to the host")
	}
	// The broker dials target "unused" with gRPC's default scheme,
	// passthrough: a resolver of that scheme that has no address yet
	// keeps the connection idle until connect gives it one.
	res := manual.NewBuilderWithScheme("passthrough")
	conn, err := s.broker.DialWithOptions(id,
		grpc.WithResolvers(res),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pluginv1.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("connect to the host's result service: %w", err)
	}
	c := &hostConn{client: pluginv1.NewHostClient(conn), res: res}
	s.hostCli[id] = c
	return c, nil
}

// hostClient returns the client of the host's Host service, connecting it
// the first time. One connection serves every module.
func (s *server) hostClient(id uint32) (pluginv1.HostClient, error) {
	c, err := s.hostConn(id)
	if err != nil {
		return nil, err
	}
	c.connect()
	return c.client, nil
}

// invalidUTF8At is the offset of the first byte of b that is not part of
// valid UTF-8, or len(b).
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// marshalValue is json.Marshal without HTML escaping:
// readers decode the same value either way, and escaping would turn each
// <, > or & of a command's output into 6 bytes (\u003c), which in a
// fleet counts against etcd's request size.
func marshalValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
