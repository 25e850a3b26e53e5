// Package memory is the in-process Coordinator: every member of a run lives
// in the same process and shares state under one mutex. It serves tests,
// in-process fleets and single-machine runs, and it is the reference
// implementation of the contract in package coordinator: the conformance
// suite (coordinatortest) runs against it.
//
// There is no network, so heartbeats always succeed; a member's loss is
// simulated with Kill, which ends a session exactly as an expired heartbeat
// would in a networked implementation.
package memory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/internal/mailbox"
)

// DefaultMaxEnvelopeBytes is the default limit on an envelope's JSON size,
// the same as the etcd coordinator's, so a pipeline that works in memory
// does not fail only once it runs on a fleet.
const DefaultMaxEnvelopeBytes = 1536*1024 - 8*1024

// errCoordinatorClosed ends sessions still open when the coordinator closes.
var errCoordinatorClosed = errors.New("memory coordinator closed")

// Option configures a Coordinator.
type Option func(*Coordinator)

// WithLogger sets the logger (default: hclog.NewNullLogger()).
func WithLogger(l hclog.Logger) Option { return func(c *Coordinator) { c.log = l } }

// WithMaxEnvelopeBytes sets the largest envelope Publish accepts.
func WithMaxEnvelopeBytes(n int) Option { return func(c *Coordinator) { c.limit = n } }

// Coordinator is the in-process coordinator. The zero value is not usable;
// call New.
type Coordinator struct {
	log   hclog.Logger
	limit int

	mu     sync.Mutex
	runs   map[string]*run
	closed bool
	// open holds every session not yet closed, ended or not, so Close can
	// wait for their goroutines.
	open map[*Session]struct{}
	seq  uint64 // enqueue order and claim tokens
}

var _ coordinator.Coordinator = (*Coordinator)(nil)

// New returns an empty coordinator.
func New(opts ...Option) *Coordinator {
	c := &Coordinator{log: hclog.NewNullLogger(), limit: DefaultMaxEnvelopeBytes, runs: map[string]*run{}, open: map[*Session]struct{}{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// MaxEnvelopeBytes is the largest envelope Publish accepts.
func (c *Coordinator) MaxEnvelopeBytes() int { return c.limit }

type run struct {
	id        string
	members   map[int]*Session
	master    *Master
	info      *coordinator.RunInfo
	infoReady chan struct{}
	queue     []queued // sorted: priority descending, then seq ascending
	claims    map[string]*claimRecord
	results   map[string]coordinator.Envelope
	cancelled chan struct{}
	reason    string
	finished  *coordinator.Status
	// changed is closed and replaced whenever the queue gains an item, to
	// wake blocked claimers without polling.
	changed  chan struct{}
	watchers map[*mailbox.Mailbox[coordinator.MemberEvent]]struct{}
}

type queued struct {
	a   coordinator.Assignment
	seq uint64
}

type claimRecord struct {
	a     coordinator.Assignment
	token string
	owner *Session
}

// runLocked returns the run, creating it. Caller holds c.mu.
func (c *Coordinator) runLocked(id string) *run {
	r := c.runs[id]
	if r == nil {
		r = &run{
			id:        id,
			members:   map[int]*Session{},
			infoReady: make(chan struct{}),
			claims:    map[string]*claimRecord{},
			results:   map[string]coordinator.Envelope{},
			cancelled: make(chan struct{}),
			changed:   make(chan struct{}),
			watchers:  map[*mailbox.Mailbox[coordinator.MemberEvent]]struct{}{},
		}
		c.runs[id] = r
	}
	return r
}

// JoinMaster implements coordinator.Coordinator.
func (c *Coordinator) JoinMaster(ctx context.Context, req coordinator.JoinRequest) (coordinator.MasterSession, error) {
	req, err := req.Normalize(true)
	if err != nil {
		return nil, err
	}
	m := &Master{results: mailbox.New[coordinator.Envelope](), lost: mailbox.New[coordinator.LostClaim]()}
	s, err := c.join(ctx, req, m)
	if err != nil {
		return nil, err
	}
	m.Session = s
	s.wg.Add(2)
	go func() { defer s.wg.Done(); m.results.Run(s.ctx) }()
	go func() { defer s.wg.Done(); m.lost.Run(s.ctx) }()
	return m, nil
}

// Join implements coordinator.Coordinator.
func (c *Coordinator) Join(ctx context.Context, req coordinator.JoinRequest) (coordinator.Session, error) {
	req, err := req.Normalize(false)
	if err != nil {
		return nil, err
	}
	return c.join(ctx, req, nil)
}

func (c *Coordinator) join(ctx context.Context, req coordinator.JoinRequest, master *Master) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("join run %s: %w", req.RunID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("join run %s: %w", req.RunID, errCoordinatorClosed)
	}
	r := c.runLocked(req.RunID)
	if r.finished != nil {
		return nil, fmt.Errorf("join run %s: %w", req.RunID, &coordinator.RunFinishedError{Status: *r.finished})
	}
	if holder, ok := r.members[req.Member.Index]; ok {
		return nil, coordinator.DuplicateIndexError(req.RunID, req.Member.Index, holder.member.Host)
	}
	member := req.Member
	member.Capabilities = slices.Clone(member.Capabilities)
	member.JoinedAt = time.Now()
	sctx, cancel := context.WithCancel(context.Background())
	s := &Session{c: c, r: r, member: member, done: make(chan struct{}), ctx: sctx, cancel: cancel}
	r.members[member.Index] = s
	c.open[s] = struct{}{}
	if master != nil {
		master.Session = s
		r.master = master
	}
	c.broadcastLocked(r, coordinator.MemberEvent{Kind: coordinator.MemberJoined, Member: member})
	c.log.Debug("member joined", "run_id", r.id, "index", member.Index, "host", member.Host)
	return s, nil
}

func (c *Coordinator) broadcastLocked(r *run, ev coordinator.MemberEvent) {
	for w := range r.watchers {
		w.Put(ev)
	}
}

// Close ends every open session (with an error saying the coordinator
// closed) and refuses later joins.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	c.closed = true
	var all []*Session
	for s := range c.open {
		all = append(all, s)
	}
	for _, s := range all {
		c.endLocked(s, errCoordinatorClosed)
	}
	c.mu.Unlock()
	for _, s := range all {
		s.wg.Wait()
	}
	return nil
}

// endLocked ends s with err: it leaves the run, its claims become lost
// claims, and if it was the master of an unfinished run every worker ends
// with ErrMasterLost. Caller holds c.mu.
func (c *Coordinator) endLocked(s *Session, err error) {
	if s.err != nil {
		return
	}
	s.err = err
	close(s.done)
	s.cancel()
	r := s.r
	if r.members[s.member.Index] == s {
		delete(r.members, s.member.Index)
	}
	isMaster := r.master != nil && r.master.Session == s
	if isMaster {
		r.master = nil
	}
	// Report claims in enqueue-independent but deterministic order.
	var lost []coordinator.LostClaim
	for mod, rec := range r.claims {
		if rec.owner == s {
			delete(r.claims, mod)
			lost = append(lost, coordinator.LostClaim{Module: mod, Attempt: rec.a.Attempt, Member: s.member})
		}
	}
	slices.SortFunc(lost, func(a, b coordinator.LostClaim) int { return cmpString(a.Module, b.Module) })
	for _, l := range lost {
		c.log.Info("claim lost", "run_id", r.id, "module", l.Module, "attempt", l.Attempt, "index", l.Member.Index, "host", l.Member.Host)
		if r.master != nil {
			r.master.lost.Put(l)
		}
	}
	c.broadcastLocked(r, coordinator.MemberEvent{Kind: coordinator.MemberLeft, Member: s.member})
	c.log.Debug("member left", "run_id", r.id, "index", s.member.Index, "host", s.member.Host, "reason", err)
	if isMaster && r.finished == nil {
		for _, w := range r.members {
			c.endLocked(w, coordinator.ErrMasterLost)
		}
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Session is a member's session in the memory coordinator. Join returns
// it as a coordinator.Session.
type Session struct {
	c      *Coordinator
	r      *run
	member coordinator.Member
	done   chan struct{}
	err    error // guarded by c.mu
	// ctx is cancelled when the session ends; it bounds the session's
	// goroutines (mailbox forwarders), which wg waits for.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ coordinator.Session = (*Session)(nil)

// Kill ends the session as if its heartbeats had stopped: Err becomes
// coordinator.ErrSessionLost and its claims are reported lost. Tests use
// it to simulate a crashed member without waiting for a timeout.
func (s *Session) Kill() {
	s.c.mu.Lock()
	s.c.endLocked(s, coordinator.ErrSessionLost)
	s.c.mu.Unlock()
	s.wg.Wait()
}

// RunID implements coordinator.Session.
func (s *Session) RunID() string { return s.r.id }

// Member implements coordinator.Session.
func (s *Session) Member() coordinator.Member { return s.member }

// Done implements coordinator.Session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err implements coordinator.Session.
func (s *Session) Err() error {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.err
}

// Close implements coordinator.Session.
func (s *Session) Close() error {
	s.c.mu.Lock()
	s.c.endLocked(s, coordinator.ErrSessionClosed)
	s.c.mu.Unlock()
	s.wg.Wait()
	s.c.mu.Lock()
	delete(s.c.open, s)
	s.c.mu.Unlock()
	return nil
}

// ClaimHolder returns the member that holds module's claim, and whether
// one does.
func (s *Session) ClaimHolder(module string) (coordinator.Member, bool) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	cr, ok := s.r.claims[module]
	if !ok || cr.owner == nil {
		return coordinator.Member{}, false
	}
	return cr.owner.member, true
}

// Members implements coordinator.Session.
func (s *Session) Members(ctx context.Context) ([]coordinator.Member, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	return s.membersLocked(), nil
}

func (s *Session) membersLocked() []coordinator.Member {
	out := make([]coordinator.Member, 0, len(s.r.members))
	for _, m := range s.r.members {
		out = append(out, m.member)
	}
	slices.SortFunc(out, func(a, b coordinator.Member) int { return a.Index - b.Index })
	return out
}

// WatchMembers implements coordinator.Session.
func (s *Session) WatchMembers(ctx context.Context) (<-chan coordinator.MemberEvent, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	mb := mailbox.New[coordinator.MemberEvent]()
	for _, m := range s.membersLocked() {
		mb.Put(coordinator.MemberEvent{Kind: coordinator.MemberJoined, Member: m})
	}
	s.r.watchers[mb] = struct{}{}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		mb.Run(wctx)
		stop()
		cancel()
		s.c.mu.Lock()
		delete(s.r.watchers, mb)
		s.c.mu.Unlock()
	}()
	return mb.Out(), nil
}

// WaitRun implements coordinator.Session.
func (s *Session) WaitRun(ctx context.Context) (coordinator.RunInfo, error) {
	select {
	case <-s.r.infoReady:
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return *s.r.info, nil
	case <-s.done:
		return coordinator.RunInfo{}, s.Err()
	case <-ctx.Done():
		return coordinator.RunInfo{}, fmt.Errorf("wait for the run record of %s: %w", s.r.id, ctx.Err())
	}
}

// Claim implements coordinator.Session.
func (s *Session) Claim(ctx context.Context) (coordinator.Claim, error) {
	for {
		if err := ctx.Err(); err != nil {
			return coordinator.Claim{}, err
		}
		s.c.mu.Lock()
		if s.err != nil {
			err := s.err
			s.c.mu.Unlock()
			return coordinator.Claim{}, err
		}
		r := s.r
		for i, q := range r.queue {
			if !coordinator.CanRun(q.a, s.member) {
				continue
			}
			r.queue = slices.Delete(r.queue, i, i+1)
			s.c.seq++
			cl := coordinator.Claim{Assignment: q.a, ClaimedAt: time.Now(), Token: strconv.FormatUint(s.c.seq, 10)}
			r.claims[q.a.Module] = &claimRecord{a: q.a, token: cl.Token, owner: s}
			s.c.mu.Unlock()
			s.c.log.Debug("claimed", "run_id", r.id, "module", q.a.Module, "attempt", q.a.Attempt, "index", s.member.Index, "queue_wait", cl.ClaimedAt.Sub(q.a.EnqueuedAt))
			return cl, nil
		}
		changed := r.changed
		s.c.mu.Unlock()
		select {
		case <-changed:
		case <-s.done:
		case <-ctx.Done():
		}
	}
}

// Publish implements coordinator.Session.
func (s *Session) Publish(ctx context.Context, cl coordinator.Claim, env coordinator.Envelope) error {
	if env.Module != cl.Assignment.Module {
		return fmt.Errorf("publish result of %q for the claim of %q: the envelope's module must be the claimed module", env.Module, cl.Assignment.Module)
	}
	data, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("publish result of %s: encode envelope: %w", env.Module, err)
	}
	if len(data) > s.c.limit {
		return &coordinator.ErrTooLarge{Size: len(data), Limit: s.c.limit}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("publish result of %s: %w", env.Module, err)
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	r := s.r
	rec := r.claims[env.Module]
	if rec == nil || rec.owner != s || rec.token != cl.Token {
		return fmt.Errorf("publish result of %s attempt %d: %w (the claim was lost or already published; the result is discarded)", env.Module, cl.Assignment.Attempt, coordinator.ErrNotClaimant)
	}
	delete(r.claims, env.Module)
	// Store a copy: the caller may reuse env's slices.
	var stored coordinator.Envelope
	if err := json.Unmarshal(data, &stored); err != nil {
		return fmt.Errorf("publish result of %s: decode envelope copy: %w", env.Module, err)
	}
	r.results[env.Module] = stored
	if r.master != nil {
		r.master.results.Put(stored)
	}
	s.c.log.Debug("result published", "run_id", r.id, "module", env.Module, "status", env.Status, "index", s.member.Index)
	return nil
}

// Result implements coordinator.Session.
func (s *Session) Result(ctx context.Context, module string) (coordinator.Envelope, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	env, ok := s.r.results[module]
	if !ok {
		return coordinator.Envelope{}, fmt.Errorf("result of %s in run %s: %w", module, s.r.id, coordinator.ErrNoResult)
	}
	return env, nil
}

// Cancelled implements coordinator.Session.
func (s *Session) Cancelled() <-chan struct{} { return s.r.cancelled }

// CancelReason implements coordinator.Session.
func (s *Session) CancelReason() string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	return s.r.reason
}

// Master is the master's session in the memory coordinator.
type Master struct {
	*Session
	results *mailbox.Mailbox[coordinator.Envelope]
	lost    *mailbox.Mailbox[coordinator.LostClaim]
}

var _ coordinator.MasterSession = (*Master)(nil)

// PublishRun implements coordinator.MasterSession.
func (m *Master) PublishRun(ctx context.Context, info coordinator.RunInfo) error {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.r.info != nil {
		return fmt.Errorf("publish run record of %s: %w", m.r.id, coordinator.ErrRunStarted)
	}
	m.r.info = &info
	close(m.r.infoReady)
	return nil
}

// Stage implements coordinator.MasterSession. In one process the master
// dispatches as fast as a member could, so staging is ignored.
func (m *Master) Stage(ctx context.Context, a coordinator.Assignment) error {
	if err := a.ValidateStaged(); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	return nil
}

// Enqueue implements coordinator.MasterSession.
func (m *Master) Enqueue(ctx context.Context, a coordinator.Assignment) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	if a.EnqueuedAt.IsZero() {
		a.EnqueuedAt = time.Now()
	}
	a.Requires = slices.Clone(a.Requires)
	a.Dependencies = slices.Clone(a.Dependencies)
	if a.OnlyMember != nil {
		v := *a.OnlyMember
		a.OnlyMember = &v
	}
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	r := m.r
	if rec, ok := r.claims[a.Module]; ok {
		return fmt.Errorf("enqueue %s attempt %d: attempt %d is still claimed by %s; requeue only after its LostClaim", a.Module, a.Attempt, rec.a.Attempt, rec.owner.member)
	}
	pos := len(r.queue)
	for i, q := range r.queue {
		if q.a.Module == a.Module && q.a.Attempt == a.Attempt {
			return fmt.Errorf("enqueue %s attempt %d: already queued", a.Module, a.Attempt)
		}
		if pos == len(r.queue) && q.a.Priority < a.Priority {
			pos = i
		}
	}
	m.c.seq++
	r.queue = slices.Insert(r.queue, pos, queued{a: a, seq: m.c.seq})
	close(r.changed)
	r.changed = make(chan struct{})
	m.c.log.Debug("enqueued", "run_id", r.id, "module", a.Module, "attempt", a.Attempt, "priority", a.Priority)
	return nil
}

// Results implements coordinator.MasterSession.
func (m *Master) Results() <-chan coordinator.Envelope { return m.results.Out() }

// LostClaims implements coordinator.MasterSession.
func (m *Master) LostClaims() <-chan coordinator.LostClaim { return m.lost.Out() }

// Cancel implements coordinator.MasterSession.
func (m *Master) Cancel(ctx context.Context, reason string) error {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	select {
	case <-m.r.cancelled:
		return nil
	default:
	}
	m.r.reason = reason
	close(m.r.cancelled)
	m.c.log.Info("run cancelled", "run_id", m.r.id, "reason", reason)
	return nil
}

// Finish implements coordinator.MasterSession.
func (m *Master) Finish(ctx context.Context, status coordinator.Status) error {
	if !status.Valid() {
		return fmt.Errorf("finish run %s: unknown status %q", m.r.id, status)
	}
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.r.finished != nil {
		return fmt.Errorf("finish run %s: already finished with status %s", m.r.id, *m.r.finished)
	}
	m.r.finished = &status
	for _, w := range m.r.members {
		if w != m.Session {
			m.c.endLocked(w, &coordinator.RunFinishedError{Status: status})
		}
	}
	return nil
}
