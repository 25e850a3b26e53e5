package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/report"
)

// DefaultCapabilityTimeout is how long an assignment no live instance can
// run waits for a capable one to join before its module fails (R5.4).
const DefaultCapabilityTimeout = 5 * time.Minute

// publishTimeout bounds publishing one envelope, which must happen even
// after the run's context is cancelled (a cancelled module still reports).
const publishTimeout = 30 * time.Second

// DistributedOptions are the settings of one instance of a distributed
// run (R5). Zero durations take the file's distributed block, else the
// defaults.
type DistributedOptions struct {
	// Instance is this process's index: 0 is the master, 1.. are workers.
	Instance int
	// Total is the number of instances the run was started with.
	Total int
	// RunID names the run on the coordinator; every instance gives the same.
	RunID string
	// Slots is how many modules this instance runs at once (default: the
	// number of CPUs).
	Slots int
	// HeartbeatInterval and HeartbeatTimeout override the file's
	// heartbeat_interval and heartbeat_timeout (defaults 2s and 10s).
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// CapabilityTimeout overrides the file's capability_timeout (default 5m).
	CapabilityTimeout time.Duration
	// HostName names this instance in envelopes and messages (default: the
	// machine's host name). Tests running several instances in one process
	// give each its own.
	HostName string
	// Version is this instance's modpipe version, advertised to the others.
	Version string
	// Preloaded, when not nil, is the pipeline file as the caller already
	// loaded it for this instance (PreloadInstance), so the instance does
	// not parse it again: on a fleet starting at once, parsing the file
	// three times was a fifth of a worker's CPU before its first claim.
	Preloaded *Preloaded
}

// Preloaded is a pipeline file loaded for one instance of a distributed
// run with that instance's own variables, environment and facts, before
// the run starts (for the coordinator settings of its distributed block).
// A worker whose own values turn out to equal the master's runs from it.
type Preloaded struct {
	file     string
	instance int
	facts    config.Facts
	cfg      *config.Pipeline
	diags    hcl.Diagnostics
}

// PreloadInstance loads opts.File as instance would. It never fails: the
// diagnostics are kept for the run to report (Err says whether there are
// errors).
func PreloadInstance(opts Options, instance int) *Preloaded {
	opts.defaults()
	facts := Facts(opts.Environ, opts.Capabilities, instance)
	cfg, diags := config.Load(opts.File, config.Options{Vars: opts.Vars, Environ: opts.Environ, Facts: facts})
	return &Preloaded{file: opts.File, instance: instance, facts: facts, cfg: cfg, diags: diags}
}

// Distributed returns the file's distributed block, nil when it has none
// or the file did not load.
func (p *Preloaded) Distributed() *config.Distributed {
	if p == nil || p.cfg == nil {
		return nil
	}
	return p.cfg.Distributed
}

// Err returns the file's diagnostics when they hold an error, else nil.
func (p *Preloaded) Err() error {
	if p == nil || !p.diags.HasErrors() {
		return nil
	}
	return p.diags
}

// usable returns p when it was loaded for this file and instance and
// without errors, else nil.
func (p *Preloaded) usable(file string, instance int) *Preloaded {
	if p == nil || p.file != file || p.instance != instance || p.cfg == nil || p.diags.HasErrors() {
		return nil
	}
	return p
}

// withDefaults fills what the caller left zero: the file's distributed
// block first, then the defaults.
func (d DistributedOptions) withDefaults(block *config.Distributed) DistributedOptions {
	if block != nil {
		if d.HeartbeatInterval == 0 {
			d.HeartbeatInterval = block.HeartbeatInterval
		}
		if d.HeartbeatTimeout == 0 {
			d.HeartbeatTimeout = block.HeartbeatTimeout
		}
		if d.CapabilityTimeout == 0 {
			d.CapabilityTimeout = block.CapabilityTimeout
		}
	}
	if d.HeartbeatInterval == 0 {
		d.HeartbeatInterval = coordinator.DefaultHeartbeatInterval
	}
	if d.HeartbeatTimeout == 0 {
		d.HeartbeatTimeout = coordinator.DefaultHeartbeatTimeout
	}
	if d.CapabilityTimeout == 0 {
		d.CapabilityTimeout = DefaultCapabilityTimeout
	}
	if d.Slots <= 0 {
		d.Slots = runtime.NumCPU()
	}
	if d.HostName == "" {
		if h, err := os.Hostname(); err == nil {
			d.HostName = h
		} else {
			d.HostName = "unknown"
		}
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	return d
}

// member is the record this instance registers with the coordinator.
func (d DistributedOptions) member(caps []string) coordinator.Member {
	return coordinator.Member{Index: d.Instance, Host: d.HostName, Capabilities: caps, Slots: d.Slots, Version: d.Version}
}

func (d DistributedOptions) joinRequest(caps []string) coordinator.JoinRequest {
	return coordinator.JoinRequest{
		RunID:             d.RunID,
		Member:            d.member(caps),
		HeartbeatInterval: d.HeartbeatInterval,
		HeartbeatTimeout:  d.HeartbeatTimeout,
	}
}

// RunDistributed runs this instance's part of a distributed run on coord:
// instance 0 is the master (it schedules, runs modules too, and returns
// the run's report), any other instance is a worker (it runs what it
// claims and returns a nil report once the master ends the run). The
// error carries the exit code, as Run's does: for a worker, 0 when the
// run succeeded, ExitFailed when it failed or was cancelled,
// ExitCoordinator when the master or the coordinator was lost, and
// ExitInvalid when its index is taken or its pipeline file differs from
// the master's.
//
// Callers decide single-machine versus distributed mode with ResolveRole
// and call Run for the former.
func RunDistributed(ctx context.Context, opts RunOptions, d DistributedOptions, coord coordinator.Coordinator) (*report.Run, error) {
	if d.Total < 1 || d.Instance < 0 || d.Instance >= d.Total {
		return nil, exitErrorf(ExitInvalid, "instance %d is out of range for a run of %d instances", d.Instance, d.Total)
	}
	if err := coordinator.ValidateRunID(d.RunID); err != nil {
		return nil, &ExitError{Code: ExitInvalid, Err: err}
	}
	opts.defaults()
	if d.Instance == 0 {
		run, err := runMaster(ctx, opts, d, coord)
		if run == nil && err != nil {
			// The master writes the run's reports: one that could not
			// start (an invalid file, a plugin, the coordinator) still
			// writes them, as a single-machine run does.
			err = notStarted(opts, err)
		}
		return run, err
	}
	return nil, runWorker(ctx, opts, d, coord)
}

// NotStarted writes the reports (and on GitHub Actions the annotation
// and step summary) of a run that could not start because of err, and
// returns err: for callers that fail before Run or RunDistributed, such
// as a fleet master whose coordinator cannot be reached.
func NotStarted(opts RunOptions, err error) error {
	opts.defaults()
	return notStarted(opts, err)
}

// pipelineHash is the hash every instance compares to be sure they run
// the same file.
func pipelineHash(file string) (string, error) {
	src, err := config.ReadFile(file)
	if err != nil {
		return "", exitErrorf(ExitInvalid, "%v", err)
	}
	sum := sha256.Sum256(src)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// typedValue is one variable or local as published with the run. The
// type travels with the value because JSON alone cannot tell a list from
// a tuple or a map from an object.
type typedValue struct {
	Type  json.RawMessage `json:"type"`
	Value json.RawMessage `json:"value"`
}

// encodeValues encodes values for RunInfo.Variables and RunInfo.Locals.
func encodeValues(values map[string]cty.Value) (json.RawMessage, error) {
	out := make(map[string]typedValue, len(values))
	for name, v := range values {
		v, _ = v.UnmarkDeep()
		ty, err := ctyjson.MarshalType(v.Type())
		if err != nil {
			return nil, fmt.Errorf("encode the type of %s: %w", name, err)
		}
		val, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return nil, fmt.Errorf("encode the value of %s: %w", name, err)
		}
		out[name] = typedValue{Type: ty, Value: val}
	}
	return json.Marshal(out)
}

// decodeValues is the inverse of encodeValues.
func decodeValues(raw json.RawMessage) (map[string]cty.Value, error) {
	out := map[string]cty.Value{}
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	var in map[string]typedValue
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, err
	}
	for name, tv := range in {
		ty, err := ctyjson.UnmarshalType(tv.Type)
		if err != nil {
			return nil, fmt.Errorf("decode the type of %s: %w", name, err)
		}
		v, err := ctyjson.Unmarshal(tv.Value, ty)
		if err != nil {
			return nil, fmt.Errorf("decode the value of %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// variableValues returns the resolved value of every variable of cfg.
func variableValues(cfg *config.Pipeline) map[string]cty.Value {
	out := make(map[string]cty.Value, len(cfg.Variables))
	for name, v := range cfg.Variables {
		out[name] = v.Value
	}
	return out
}

// publishEnvelope publishes env for the claim c. An envelope too large for
// the coordinator is replaced by a failed one saying so (R4.2), so the
// master still learns the module's outcome. It must run even when the
// run's context is already cancelled, hence its own bounded context. It
// returns the envelope it published, or tried to, and whether it did.
func publishEnvelope(sess coordinator.Session, c coordinator.Claim, env coordinator.Envelope, log hclog.Logger) (coordinator.Envelope, bool) {
	ctx, cancel := sessionContext(sess, publishTimeout)
	defer cancel()
	if sess.Err() != nil {
		// An ended session holds no claim any more (the master was told
		// they are lost), and its coordinator may be unreachable: waiting
		// publishTimeout for it would only delay the exit.
		log.Warn("not publishing: this instance's coordinator session ended", "module", env.Module, "attempt", c.Assignment.Attempt, "reason", sess.Err())
		return env, false
	}
	err := sess.Publish(ctx, c, env)
	var tooLarge *coordinator.ErrTooLarge
	if errors.As(err, &tooLarge) {
		log.Warn("result too large for the coordinator; publishing a failure instead", "module", env.Module, "size", tooLarge.Size, "limit", tooLarge.Limit)
		env = tooLargeEnvelope(env, tooLarge.Size, tooLarge.Limit)
		if tooLarge.Refused != "" {
			// Within the assumed limit: name the real cause, not a
			// comparison that contradicts itself.
			env.Error.Message = fmt.Sprintf("the result of %s is %d bytes and %s", env.Module, tooLarge.Size, tooLarge.Refused)
		}
		err = sess.Publish(ctx, c, env)
	}
	if err != nil && sess.Err() != nil {
		// The session ended while the result was on its way (the host
		// was frozen past heartbeat_timeout, or cut off): its claims
		// are released, as above, and the master re-runs or fails what
		// they held; not an error of this instance's.
		log.Warn("not publishing: this instance's coordinator session ended", "module", env.Module, "attempt", c.Assignment.Attempt, "reason", sess.Err(), "error", err)
		return env, false
	}
	if err != nil {
		log.Error("publish result", "module", env.Module, "attempt", c.Assignment.Attempt, "error", err)
		return env, false
	}
	log.Info("result published", "module", env.Module, "attempt", c.Assignment.Attempt, "status", env.Status)
	return env, true
}

// sessionContext returns a context for a coordinator call that must run
// even after the run's context is done (publishing, finishing), bounded by
// timeout and ended as soon as sess ends: an ended session's calls cannot
// succeed, and when etcd is gone they would otherwise wait the whole
// timeout. cancel waits for the helper goroutine.
func sessionContext(sess coordinator.Session, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sess.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel()
		wg.Wait()
	}
}

// claimLog logs a claim with how long the assignment waited in the queue.
func claimLog(log hclog.Logger, c coordinator.Claim) {
	wait := time.Duration(0)
	if !c.Assignment.EnqueuedAt.IsZero() {
		wait = c.ClaimedAt.Sub(c.Assignment.EnqueuedAt)
	}
	log.Info("claimed", "module", c.Assignment.Module, "attempt", c.Assignment.Attempt, "queue_wait", wait)
}

// capabilityError is the message of a module no live member could take
// within capability_timeout: what it needs and what every member offers.
func capabilityError(a coordinator.Assignment, members []coordinator.Member, waited time.Duration, never, left []int) string {
	var b strings.Builder
	if a.OnlyMember != nil {
		fmt.Fprintf(&b, "%s is pinned to instance %d", a.Module, *a.OnlyMember)
		if len(a.Requires) > 0 {
			fmt.Fprintf(&b, " and requires [%s]", strings.Join(a.Requires, ", "))
		}
		fmt.Fprintf(&b, ", and no live instance could run it within capability_timeout (%s)", waited)
	} else {
		fmt.Fprintf(&b, "no live instance offers the capabilities [%s] that %s requires; waited capability_timeout (%s)",
			strings.Join(a.Requires, ", "), a.Module, waited)
	}
	if len(members) == 0 {
		b.WriteString("; no instance is live")
	} else {
		b.WriteString("; live instances: ")
		sorted := append([]coordinator.Member(nil), members...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })
		for i, m := range sorted {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "%s offers [%s]", m, strings.Join(m.Capabilities, ", "))
			if missing := coordinator.MissingCapabilities(a.Requires, m.Capabilities); len(missing) > 0 {
				fmt.Fprintf(&b, " and lacks [%s]", strings.Join(missing, ", "))
			}
		}
	}
	// An instance that could not start (a missing plugin, another file)
	// may be the capable one: its own job's log says why.
	if len(never) > 0 {
		fmt.Fprintf(&b, "; %s of --total never joined (see %s job's log)", instanceList(never), map[bool]string{true: "its", false: "their"}[len(never) == 1])
	}
	if len(left) > 0 {
		fmt.Fprintf(&b, "; %s left the run", instanceList(left))
	}
	b.WriteString(". Start an instance with the missing capabilities (--capability or MODPIPE_CAPABILITIES), or raise capability_timeout")
	return b.String()
}

// instanceList is "instance 2" or "instances 1, 3".
func instanceList(indexes []int) string {
	if len(indexes) == 1 {
		return fmt.Sprintf("instance %d", indexes[0])
	}
	s := make([]string, len(indexes))
	for i, x := range indexes {
		s[i] = strconv.Itoa(x)
	}
	return "instances " + strings.Join(s, ", ")
}

// sessionSource serves a worker's dependency results from the coordinator,
// caching them: a published envelope never changes while its dependents
// run.
type sessionSource struct {
	ctx  context.Context
	sess coordinator.Session
	log  hclog.Logger

	mu    sync.Mutex
	cache map[string]coordinator.Envelope
}

func (s *sessionSource) Envelope(addr string) (coordinator.Envelope, bool) {
	s.mu.Lock()
	env, ok := s.cache[addr]
	s.mu.Unlock()
	if ok {
		return env, true
	}
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	defer cancel()
	env, err := s.sess.Result(ctx, addr)
	if err != nil {
		s.log.Warn("fetch dependency result", "module", addr, "error", err)
		return coordinator.Envelope{}, false
	}
	s.mu.Lock()
	s.cache[addr] = env
	s.mu.Unlock()
	return env, true
}

// sessionEndError turns the reason a worker's session ended into the
// worker's exit: nil when the run succeeded, else an *ExitError whose code
// mirrors the run's status or names the coordinator's failure.
func sessionEndError(sessErr error, d DistributedOptions, cancelReason string) error {
	var finished *coordinator.RunFinishedError
	switch {
	case sessErr == nil:
		return nil
	case errors.As(sessErr, &finished):
		switch {
		case finished.Status == coordinator.StatusSucceeded:
			return nil
		case cancelReason != "":
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("run %s finished with status %s: %s", d.RunID, finished.Status, cancelCause(cancelReason))}
		default:
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("run %s finished with status %s; the master's summary has each module's outcome", d.RunID, finished.Status)}
		}
	case errors.Is(sessErr, coordinator.ErrMasterLost):
		return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("instance %d of run %s: %w; check the master's job (it crashed, was killed or lost its network) and rerun", d.Instance, d.RunID, sessErr)}
	case errors.Is(sessErr, coordinator.ErrSessionLost):
		return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("instance %d of run %s: %w; check the connection to the coordinator", d.Instance, d.RunID, sessErr)}
	}
	return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("instance %d of run %s: the coordinator session ended: %w", d.Instance, d.RunID, sessErr)}
}

// joinError turns a failed Join or JoinMaster into an exit: a taken index
// is the user's mistake (ExitInvalid), anything else the coordinator's.
func joinError(err error, d DistributedOptions) error {
	var finished *coordinator.RunFinishedError
	switch {
	case errors.Is(err, coordinator.ErrDuplicateIndex):
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("join run %s as instance %d: %w", d.RunID, d.Instance, err)}
	case errors.As(err, &finished):
		return &ExitError{Code: ExitInvalid, Err: fmt.Errorf("join run %s as instance %d: the run has already %s; start a new run with a new --run-id", d.RunID, d.Instance, strings.TrimPrefix(finished.Error(), "run "))}
	}
	return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("join run %s as instance %d: %w", d.RunID, d.Instance, err)}
}
