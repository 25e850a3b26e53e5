package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Coordinator connects the instances of distributed runs. One Coordinator
// value may serve many runs at once; run ids isolate them completely: no
// key, event, member or result of one run is ever visible to another.
//
// Everything a member does happens through the Session that Join or
// JoinMaster returns. A Coordinator value is safe for concurrent use.
type Coordinator interface {
	// JoinMaster registers the master (member index 0) of req.RunID and
	// returns its session. req.Member.Index must be 0. If a live master
	// already holds the run, it fails with an error wrapping
	// ErrDuplicateIndex that names index 0 and the holder's host. If the
	// run was already finished (Finish), it fails with an error wrapping
	// *RunFinishedError.
	JoinMaster(ctx context.Context, req JoinRequest) (MasterSession, error)

	// Join registers a worker (req.Member.Index >= 1) in req.RunID and
	// returns its session. The master does not need to be live yet: a
	// worker may join before or after it. A worker whose index is already
	// held by a live session is refused with an error wrapping
	// ErrDuplicateIndex naming the index and the holder's host; the holder
	// is not disturbed. A finished run refuses with *RunFinishedError.
	Join(ctx context.Context, req JoinRequest) (Session, error)

	// Close releases the coordinator's resources (connections). Sessions
	// still open end as if lost. Close is idempotent.
	Close() error
}

// Session is one member's membership in one run, kept alive by heartbeats.
// All methods are safe for concurrent use: the engine calls Claim from
// several slots at once.
//
// A session ends exactly once, for one of these reasons, reported by Err:
//   - ErrSessionClosed: Close was called (a graceful leave);
//   - ErrSessionLost: the session could not renew its liveness before its
//     local deadline (one HeartbeatInterval before the coordinator may
//     drop it: HeartbeatTimeout after the last successful renewal)
//     and stopped itself; the coordinator has dropped or will drop its
//     membership and claims, so the member must stop its work;
//   - ErrMasterLost (workers only): the master's session ended before the
//     run was finished;
//   - *RunFinishedError (workers only): the master called Finish; its
//     Status is the run's final status;
//   - any other error: the coordinator itself failed (wrapped with context).
//
// When a session ends, every claim it holds without a published result is
// reported to the master as a LostClaim, its member record disappears
// (a MemberLeft event), and every blocked call on it returns its Err.
type Session interface {
	// RunID is the run this session belongs to.
	RunID() string

	// Member is the record this session registered (with JoinedAt set).
	Member() Member

	// Done is closed when the session has ended. Err tells why.
	Done() <-chan struct{}

	// Err is nil while the session is live, then the reason it ended (see
	// the Session doc). It never changes once non-nil.
	Err() error

	// Close ends the session gracefully: the member leaves, its unfinished
	// claims are reported lost. It waits for the session's goroutines.
	// Close after the session ended returns nil. Err then reports whatever
	// ended the session first.
	Close() error

	// Members returns the live members of the run, sorted by index.
	Members(ctx context.Context) ([]Member, error)

	// WatchMembers returns a channel that first receives one MemberJoined
	// event per currently live member (sorted by index), then every join
	// and leave in the order the coordinator saw them. No event is
	// dropped (the buffer is unbounded). The channel is closed when ctx is
	// done or the session ends.
	WatchMembers(ctx context.Context) (<-chan MemberEvent, error)

	// WaitRun blocks until the master has published the run record
	// (MasterSession.PublishRun) and returns it. It returns the session's
	// Err if the session ends first, or ctx.Err().
	WaitRun(ctx context.Context) (RunInfo, error)

	// Claim blocks until an assignment this member can run is queued, and
	// takes it exclusively: among any number of concurrent claimers, in
	// this process or others, exactly one gets each queued assignment.
	// "Can run" is CanRun(assignment, member): the requirements are a
	// case-insensitive subset of the member's capabilities and any pin
	// (OnlyMember) names this member.
	//
	// Order: among the assignments this member can run, a higher Priority
	// is claimed first; within one priority, the earliest enqueued first.
	// A session always sees its own Enqueues; assignments enqueued by other
	// sessions are seen once the implementation's view has them (a
	// networked implementation may lag by a round trip). Once claimers
	// contend, an implementation may spread them over the first few ready
	// assignments of the top priority so they stop racing for the head
	// (see docs/coordinator.md); an uncontended claimer sees strict order,
	// and a lower priority is never taken while a higher one it can run is
	// visible.
	//
	// The claim lives on this session: if the session ends before Publish
	// succeeds for it, the master receives a LostClaim. Claim returns the
	// session's Err if the session ends, or ctx.Err() if ctx is done first;
	// in both cases no assignment was taken.
	Claim(ctx context.Context) (Claim, error)

	// Publish records the result of a claimed assignment and ends the
	// claim. It is fenced: it succeeds only if c is still this session's
	// live claim; a stale claim (the session was lost and the assignment
	// requeued, or the result was already published) fails with an error
	// wrapping ErrNotClaimant and the envelope is discarded. env.Module
	// must equal c.Assignment.Module. An envelope whose JSON encoding is
	// larger than the coordinator's limit fails with *ErrTooLarge and the
	// claim stays held, so the caller can publish a smaller (failed)
	// envelope instead.
	//
	// Once Publish returns nil, the master receives env exactly once on
	// Results, and Result(env.Module) returns it to any member.
	Publish(ctx context.Context, c Claim, env Envelope) error

	// Result returns the latest published envelope of module (an address
	// such as "build" or "test[linux]"), for dependency results. It fails
	// with an error wrapping ErrNoResult if none was published yet.
	Result(ctx context.Context, module string) (Envelope, error)

	// Cancelled is closed once the master has cancelled the run (on every
	// member, including the master itself). CancelReason then returns the
	// reason. Cancellation does not end sessions: members stop their
	// modules, publish what they have, and leave; the master still Finishes.
	Cancelled() <-chan struct{}

	// CancelReason is the reason given to Cancel, or "" before Cancelled is
	// closed.
	CancelReason() string
}

// MasterSession is the session of the master (member 0). It adds what only
// the master may do: publish the run record, enqueue work, collect results
// and lost claims, cancel and finish the run.
type MasterSession interface {
	Session

	// PublishRun stores the run record workers wait for in WaitRun. It may
	// be called once per run; a second call fails.
	PublishRun(ctx context.Context, info RunInfo) error

	// Enqueue makes a available to claimers. a.Module and a.Attempt >= 1
	// are required; EnqueuedAt is set to now if zero. Enqueueing the same
	// module and attempt twice, or a module that is still claimed (its
	// claim neither published nor lost yet), fails: requeue only after the
	// LostClaim event.
	Enqueue(ctx context.Context, a Assignment) error

	// Stage announces a's first attempt before it is ready, so that it can
	// be dispatched without a round trip through the master: a has
	// Attempt 1 and exactly one entry in Dependencies, and it is ready as
	// soon as that dependency's envelope is published with status
	// succeeded (and the run is not cancelled). The member publishing it
	// may then dispatch a in the same write. The master still calls
	// Enqueue(a) once its scheduler finds a ready: if a was dispatched
	// already, Enqueue returns nil and dispatches nothing, so a runs
	// once either way. Its outcome arrives on Results or LostClaims as any
	// other, possibly before that Enqueue call. The caller stages only
	// assignments that nothing else holds back (not_in_parallel, limits,
	// always_run). Staging is a hint: an implementation may ignore it (the
	// memory coordinator, in one process, gains nothing from it), and a
	// Stage that comes too late (a already enqueued) does nothing.
	Stage(ctx context.Context, a Assignment) error

	// Results delivers every envelope published in the run, each exactly
	// once, in publish order. The channel is never closed while the session
	// is live; it is closed after the session ends.
	Results() <-chan Envelope

	// LostClaims delivers one event per claim whose session ended without
	// publishing, exactly once each. The master decides: requeue (Enqueue
	// with Attempt+1) or fail the module. Closed after the session ends.
	LostClaims() <-chan LostClaim

	// Cancel cancels the run: every member's Cancelled channel closes and
	// CancelReason returns reason. Only the first call's reason is kept;
	// later calls return nil.
	Cancel(ctx context.Context, reason string) error

	// Finish ends the run with its final status: every worker's session
	// ends with a *RunFinishedError carrying status, and later joins are
	// refused. The master's own session stays live until Close.
	Finish(ctx context.Context, status Status) error
}

// JoinRequest is what a member gives to Join or JoinMaster.
type JoinRequest struct {
	// RunID names the run; see ValidateRunID.
	RunID  string
	Member Member
	// HeartbeatInterval is how often the session renews its liveness
	// (default DefaultHeartbeatInterval). HeartbeatTimeout is how long
	// without a renewal before the member counts as lost, both by the
	// coordinator and by the session itself (default
	// DefaultHeartbeatTimeout). Interval must be less than half of
	// Timeout: a session ends itself (ErrSessionLost) one interval before
	// the coordinator may drop it, so that its member stops its work
	// before its claims can be handed to someone else.
	// Implementations may round Timeout up to their granularity (etcd
	// leases count whole seconds).
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
}

// Defaults for JoinRequest.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultHeartbeatTimeout  = 10 * time.Second
)

// Normalize validates req and fills in defaults. wantMaster says whether
// the request is for JoinMaster (index 0) or Join (index >= 1).
// Implementations call it first thing in Join and JoinMaster.
func (req JoinRequest) Normalize(wantMaster bool) (JoinRequest, error) {
	if err := ValidateRunID(req.RunID); err != nil {
		return req, err
	}
	if wantMaster && req.Member.Index != 0 {
		return req, fmt.Errorf("join as master: member index is %d, the master is always index 0", req.Member.Index)
	}
	if !wantMaster && req.Member.Index < 1 {
		return req, fmt.Errorf("join as worker: member index is %d; workers are 1 and up (index 0 joins with JoinMaster)", req.Member.Index)
	}
	if req.HeartbeatInterval == 0 {
		req.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if req.HeartbeatTimeout == 0 {
		req.HeartbeatTimeout = DefaultHeartbeatTimeout
	}
	// A session ends itself one interval before the coordinator may
	// drop it, so the timeout must hold that margin plus at least one
	// more interval for a renewal.
	if req.HeartbeatInterval < 0 || req.HeartbeatTimeout < 0 || 2*req.HeartbeatInterval >= req.HeartbeatTimeout {
		return req, fmt.Errorf("heartbeat interval %s must be positive and shorter than half the heartbeat timeout %s", req.HeartbeatInterval, req.HeartbeatTimeout)
	}
	if req.Member.Slots < 0 {
		return req, fmt.Errorf("member %d has %d slots; give 0 (unknown) or more", req.Member.Index, req.Member.Slots)
	}
	return req, nil
}

// ValidateRunID reports whether id can name a run: 1 to 128 characters of
// letters, digits, '.', '_' and '-'. Transports build keys and paths from
// it, so nothing else is accepted.
func ValidateRunID(id string) error {
	if id == "" {
		return errors.New("run id is empty: set --run-id or MODPIPE_RUN_ID")
	}
	if len(id) > 128 {
		return fmt.Errorf("run id %q is %d characters long; at most 128 are allowed", id, len(id))
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("run id %q contains %q; use only letters, digits, '.', '_' and '-'", id, r)
		}
	}
	return nil
}

// Member describes one instance of a run.
type Member struct {
	// Index is the instance index: 0 is the master, 1..N-1 are workers.
	Index int `json:"index"`
	// Host is the machine's host name, for logs and error messages.
	Host string `json:"host"`
	// Capabilities are the strings this member offers (user-defined plus
	// OS and arch). Matching is case-insensitive.
	Capabilities []string `json:"capabilities"`
	// Slots is how many modules the member runs at once (0 = unknown).
	Slots int `json:"slots"`
	// Version is the member's modpipe version.
	Version string `json:"version"`
	// JoinedAt is set by the coordinator when the member joins.
	JoinedAt time.Time `json:"joined_at"`
}

// String names the member the way error messages do: "instance 2 (HOST)".
func (m Member) String() string {
	return fmt.Sprintf("instance %d (%s)", m.Index, m.Host)
}

// MemberEventKind tells joins from leaves.
type MemberEventKind string

// Member event kinds.
const (
	MemberJoined MemberEventKind = "joined"
	// MemberLeft covers every way a session ends: closed, lost, killed.
	MemberLeft MemberEventKind = "left"
)

// MemberEvent is one change of the run's membership.
type MemberEvent struct {
	Kind   MemberEventKind `json:"kind"`
	Member Member          `json:"member"`
}

// RunInfo is the run record the master publishes and workers wait for.
type RunInfo struct {
	// PipelineHash is the hash of the pipeline file; a worker whose own
	// file hashes differently must refuse to run (the engine checks).
	PipelineHash string `json:"pipeline_hash"`
	// Variables and Locals are the values the master resolved, as JSON
	// objects, so every instance evaluates with the same values.
	Variables json.RawMessage `json:"variables"`
	Locals    json.RawMessage `json:"locals"`
	// Total is the number of instances the run was configured with.
	Total     int       `json:"total"`
	StartedAt time.Time `json:"started_at"`
}

// Assignment is one unit of work: one attempt of one module.
type Assignment struct {
	// Module is the module's address: NAME or NAME[key].
	Module string `json:"module"`
	// Attempt counts from 1; a requeue after a lost claim is a new attempt.
	Attempt int `json:"attempt"`
	// Requires are the capabilities a member must offer (case-insensitive).
	Requires []string `json:"requires,omitempty"`
	// OnlyMember, when set, restricts the assignment to that member index
	// (0 for pin_to_master). Use PinToMaster or OnlyOn to set it.
	OnlyMember *int `json:"only_member,omitempty"`
	// Timeout is the module's timeout (0 = none).
	Timeout time.Duration `json:"timeout"`
	// Dependencies are the addresses of the modules whose envelopes the
	// module may read through Session.Result.
	Dependencies []string `json:"dependencies,omitempty"`
	// Priority: higher is claimed first.
	Priority int `json:"priority"`
	// EnqueuedAt is set by Enqueue when zero.
	EnqueuedAt time.Time `json:"enqueued_at"`
}

// PinToMaster restricts a to the master.
func (a Assignment) PinToMaster() Assignment { return a.OnlyOn(0) }

// OnlyOn restricts a to the member with the given index.
func (a Assignment) OnlyOn(index int) Assignment {
	a.OnlyMember = &index
	return a
}

// Validate checks what Enqueue requires.
func (a Assignment) Validate() error {
	if a.Module == "" {
		return errors.New("assignment has no module address")
	}
	if a.Attempt < 1 {
		return fmt.Errorf("assignment of %s has attempt %d; attempts count from 1", a.Module, a.Attempt)
	}
	if a.OnlyMember != nil && *a.OnlyMember < 0 {
		return fmt.Errorf("assignment of %s is restricted to member %d, which cannot exist", a.Module, *a.OnlyMember)
	}
	return nil
}

// ValidateStaged checks what Stage requires of a besides Validate: the
// first attempt, with exactly one dependency.
func (a Assignment) ValidateStaged() error {
	if err := a.Validate(); err != nil {
		return err
	}
	if a.Attempt != 1 {
		return fmt.Errorf("assignment of %s has attempt %d; only a first attempt can be staged", a.Module, a.Attempt)
	}
	if len(a.Dependencies) != 1 {
		return fmt.Errorf("assignment of %s has %d dependencies; only one with exactly one can be staged", a.Module, len(a.Dependencies))
	}
	return nil
}

// CanRun reports whether member m may claim a: every required capability
// is offered by m (case-insensitive), and a is not restricted to another
// member. Every implementation must filter claims with exactly this rule.
func CanRun(a Assignment, m Member) bool {
	if a.OnlyMember != nil && *a.OnlyMember != m.Index {
		return false
	}
	// What MissingCapabilities finds, without building the list: the
	// claim loops and designation ask this of every queued item on every
	// change they see.
	for _, r := range a.Requires {
		if !offers(m.Capabilities, r) {
			return false
		}
	}
	return true
}

// offers reports whether the capability r is among offered, compared
// case-insensitively: the one matching rule of CanRun and
// MissingCapabilities.
func offers(offered []string, r string) bool {
	return slices.ContainsFunc(offered, func(o string) bool { return strings.EqualFold(r, o) })
}

// MissingCapabilities returns the required capabilities that offered lacks
// (case-insensitive), in the order of required. The engine uses it for
// capability_timeout messages.
func MissingCapabilities(required, offered []string) []string {
	var missing []string
	for _, r := range required {
		if !offers(offered, r) {
			missing = append(missing, r)
		}
	}
	return missing
}

// Claim is an assignment taken by one session. Pass it back unchanged to
// Publish.
type Claim struct {
	Assignment Assignment `json:"assignment"`
	// ClaimedAt is when the claim was taken (for the queue-wait log:
	// ClaimedAt - Assignment.EnqueuedAt).
	ClaimedAt time.Time `json:"claimed_at"`
	// Token is the implementation's fencing token: opaque to callers.
	Token string `json:"token"`
}

// LostClaim reports that a member's session ended while it held a claim
// without having published its result.
type LostClaim struct {
	Module  string `json:"module"`
	Attempt int    `json:"attempt"`
	// Member is the member that held the claim.
	Member Member `json:"member"`
}

// Error is the message the engine uses when a lost claim has no attempts
// left: "instance 2 (HOST) was lost while running NAME".
func (l LostClaim) Error() string {
	return fmt.Sprintf("%s was lost while running %s (attempt %d)", l.Member, l.Module, l.Attempt)
}

// Sentinel errors. Implementations wrap them with context; callers test
// them with errors.Is.
var (
	// ErrDuplicateIndex: a live session already holds the member index.
	ErrDuplicateIndex = errors.New("instance index already in use")
	// ErrRunStarted: PublishRun of a run whose record an earlier master
	// already published; that master is gone (a live one would still
	// hold member index 0), and the run id cannot be started again.
	ErrRunStarted = errors.New("run already started by another master")
	// ErrMasterLost: the master's session ended before the run finished.
	ErrMasterLost = errors.New("master lost: the master instance stopped heartbeating or left before finishing the run")
	// ErrSessionLost: the session could not renew its liveness in time.
	ErrSessionLost = errors.New("session lost: could not renew the heartbeat before the timeout; this instance's claims were released")
	// ErrSessionClosed: Close was called.
	ErrSessionClosed = errors.New("session closed")
	// ErrNotClaimant: Publish of a claim this session no longer holds.
	ErrNotClaimant = errors.New("not the current claimant")
	// ErrNoResult: Result of a module with no published envelope.
	ErrNoResult = errors.New("no result published")
)

// DuplicateIndexError builds the error Join returns for a taken index.
func DuplicateIndexError(runID string, index int, holderHost string) error {
	return fmt.Errorf("%w: instance %d of run %s is already held by host %q; give every instance its own --instance index, or wait for the other one to stop",
		ErrDuplicateIndex, index, runID, holderHost)
}

// RunFinishedError ends worker sessions when the master finishes the run.
type RunFinishedError struct {
	Status Status
}

func (e *RunFinishedError) Error() string {
	return fmt.Sprintf("run finished with status %s", e.Status)
}

// ErrTooLarge is returned by Publish when the envelope's JSON encoding is
// larger than the coordinator accepts.
type ErrTooLarge struct {
	// Size is the envelope's encoded size and Limit the largest accepted,
	// both in bytes.
	Size, Limit int
	// Refused, when set, says that the server refused the envelope
	// although it is within Limit, and why: its own limit is lower than
	// the coordinator assumed.
	Refused string
}

func (e *ErrTooLarge) Error() string {
	if e.Refused != "" {
		return fmt.Sprintf("result envelope is %d bytes: %s", e.Size, e.Refused)
	}
	return fmt.Sprintf("result envelope is %d bytes, larger than the coordinator's limit of %d bytes; return a smaller result (write large data to a file or artifact and return its path)", e.Size, e.Limit)
}
