package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// Pushing assignments to waiting claimers. Without it a dispatch step
// costs three raft commits in sequence: the master's enqueue, then, once
// a worker's watch shows the queue key, the worker's claim Txn (the
// publish before them is the third). A Claim call that finds nothing it
// can run instead registers a waiter key on its session lease:
//
//	waiters/NNNNN/LEASE-SEQ
//
// The master sees waiters in its view. When it enqueues an assignment
// that a waiting member can run, and its view shows nothing queued at
// that priority or above that the member could take instead, its Txn
// compares that the waiter still exists and the module is neither queued
// nor claimed, deletes the waiter and creates claims/MOD directly on the
// waiter's lease (etcd lets any client attach an existing lease). The
// claim value names the waiter and carries the assignment; the waiting
// Claim call sees it in its watch and returns it with the claim's create
// revision as the token, so Publish's fencing is unchanged. If any
// compare fails, the Txn's else branch is the ordinary enqueue Txn:
// either way one commit.
//
// A waiter belongs to one Claim call. If the call takes a queue key
// instead, its claim Txn also deletes the waiter and compares that it
// still exists, so a push and a queue claim never both land on one call.
// If the call ends (its ctx) with a waiter registered, it deletes the
// waiter; if a push won that race, the pushed claim is released: one Txn
// deletes the claim and puts the queue key back with the same attempt.
// The master sees the claim delete and the queue put in one revision and
// does not report a lost claim. A release that fails leaves the claim in
// the session's inbox for its next Claim call; Close releases what is
// left. A session that dies takes its waiters and pushed claims with its
// lease: the master reports those claims lost, as any other.

// waiterEntry is a waiter in the master's view.
type waiterEntry struct {
	key       string
	idx       int
	lease     int64
	createRev int64
	// used: a push to this waiter is in flight.
	used bool
}

// waiter is the waiter of one Claim call.
type waiter struct {
	key string
	rev int64
	// consumed: a push deleted the waiter; its claim is on its way
	// through the watch.
	consumed bool
}

// queueModule returns the module of a queue key's relative part
// ("MOD/ATT").
func queueModule(rest string) (string, bool) {
	esc, _, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	mod, err := url.PathUnescape(esc)
	return mod, err == nil
}

// requeuedSince reports whether mod is queued with a key created after rev.
func (v *view) requeuedSince(mod string, rev int64) bool {
	for _, it := range v.queue {
		if it.a.Module == mod && it.createRev > rev {
			return true
		}
	}
	return false
}

// waiterPutLocked records a waiter in the view (every member pushes:
// the master as it enqueues, any member as it dispatches a staged module).
func (s *Session) waiterPutLocked(key, rest string, kv interface {
	GetLease() int64
	GetCreateRevision() int64
}) {
	idxs, _, _ := strings.Cut(strings.TrimPrefix(rest, "waiters/"), "/")
	idx, err := strconv.Atoi(idxs)
	if err != nil {
		return
	}
	if _, ok := s.view.waiters[key]; !ok {
		s.view.waiters[key] = &waiterEntry{key: key, idx: idx, lease: kv.GetLease(), createRev: kv.GetCreateRevision()}
	}
}

// pushValue is what a member decodes of a claim pushed to it: the
// claimant's member record is skipped (it is this member) and the
// assignment decoded in the same pass.
type pushValue struct {
	Module     string                  `json:"module"`
	Attempt    int                     `json:"attempt"`
	Waiter     string                  `json:"waiter"`
	Assignment *coordinator.Assignment `json:"assignment"`
}

// pushOf returns the waiter and the claim of a claim pushed to this
// session, or false if ce is not one.
func (s *Session) pushOf(ce claimEntry, now time.Time) (string, coordinator.Claim, bool) {
	if ce.idx != s.member.Index || ce.lease != int64(s.lease) {
		return "", coordinator.Claim{}, false
	}
	var pv pushValue
	err := json.Unmarshal(ce.raw, &pv)
	if err != nil {
		cv := ce.value()
		if len(cv.Assignment) == 0 {
			return "", coordinator.Claim{}, false
		}
		pv = pushValue{Module: cv.Module, Attempt: cv.Attempt, Waiter: cv.Waiter}
	}
	if pv.Waiter == "" || (err == nil && pv.Assignment == nil) {
		return "", coordinator.Claim{}, false // a claim of ours, not a push
	}
	a := pv.Assignment
	if a == nil || a.Module != pv.Module {
		// The claim is ours either way: run what it names rather than
		// hold it forever.
		s.log.Warn("undecodable assignment pushed to this member; running the claimed module and attempt", "module", pv.Module, "error", err)
		a = &coordinator.Assignment{Module: pv.Module, Attempt: pv.Attempt}
	}
	return pv.Waiter, coordinator.Claim{Assignment: *a, ClaimedAt: now, Token: strconv.FormatInt(ce.createRev, 10)}, true
}

// pushedLocked records a claim pushed to one of this session's waiters
// and reports whether it was one. A push to a waiter no Claim call owns
// any more (its withdrawal failed) goes to the inbox.
func (s *Session) pushedLocked(ce claimEntry, now time.Time) bool {
	waiter, cl, ok := s.pushOf(ce, now)
	if !ok {
		return false
	}
	if _, ok := s.pushed[waiter]; ok {
		return false
	}
	if s.owned[waiter] {
		s.pushed[waiter] = cl
	} else {
		s.inbox = append(s.inbox, cl)
	}
	return true
}

// newWaiterKey allocates a waiter key, owned from now on, or "" once
// Close began.
func (s *Session) newWaiterKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.err != nil {
		return ""
	}
	s.waitSeq++
	key := fmt.Sprintf("%swaiters/%05d/%x-%d", s.prefix, s.member.Index, int64(s.lease), s.waitSeq)
	s.owned[key] = true
	return key
}

// register creates a waiter for one Claim call.
func (s *Session) register() (*waiter, error) {
	key := s.newWaiterKey()
	if key == "" {
		return nil, fmt.Errorf("register a waiter: %w", coordinator.ErrSessionClosed)
	}
	// Not the caller's ctx, for the reason tryClaim gives: a waiter
	// written after its withdrawal would take a push nobody waits for.
	pctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.DialTimeout)
	defer cancel()
	resp, err := s.c.cli.Put(pctx, key, "", clientv3.WithLease(s.lease))
	if err != nil {
		// It may have been written: withdraw deletes it if so.
		return &waiter{key: key, rev: -1}, fmt.Errorf("register a waiter: %w", err)
	}
	return &waiter{key: key, rev: resp.Header.Revision}, nil
}

// withdraw deletes w and returns the claim pushed to it before that, if
// any. Past the view's catching up, a push it cannot rule out goes to the
// inbox when it arrives.
func (s *Session) withdraw(w *waiter) *coordinator.Claim {
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.c.cfg.DialTimeout)
	defer cancel()
	if !w.consumed {
		cmp := clientv3.Compare(clientv3.CreateRevision(w.key), "=", w.rev)
		if w.rev < 0 {
			cmp = clientv3.Compare(clientv3.CreateRevision(w.key), ">", 0)
		}
		resp, err := s.c.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(w.key)).Commit()
		switch {
		case err != nil:
			// Unknown: disown it, so a push that lands goes to the inbox.
		case resp.Succeeded:
			s.disown(w)
			return nil
		default:
			// Gone: pushed to (or never written, if registering failed).
			_ = s.waitView(ctx, resp.Header.Revision)
		}
	} else {
		_ = s.waitPushed(ctx, w)
	}
	return s.disown(w)
}

// disown forgets w and returns what was pushed to it.
func (s *Session) disown(w *waiter) *coordinator.Claim {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owned, w.key)
	if cl, ok := s.pushed[w.key]; ok {
		delete(s.pushed, w.key)
		return &cl
	}
	return nil
}

// waitView waits until the view reflects revision rev.
func (s *Session) waitView(ctx context.Context, rev int64) error {
	return s.waitViewFor(ctx, func() bool { return s.viewRev >= rev })
}

// waitPushed waits until the claim pushed to w is in the view.
func (s *Session) waitPushed(ctx context.Context, w *waiter) error {
	return s.waitViewFor(ctx, func() bool { _, ok := s.pushed[w.key]; return ok })
}

// waitViewFor waits until ok, called with s.mu held, holds; it looks again
// each time the view advances.
func (s *Session) waitViewFor(ctx context.Context, ok func() bool) error {
	for {
		s.mu.Lock()
		done, adv := ok(), s.advanced
		s.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-adv:
		case <-s.done:
			return s.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release puts a claim this session holds but will not run back in the
// queue with the same attempt, or failing that keeps it in the inbox.
func (s *Session) release(cl coordinator.Claim) {
	err := s.releaseTxn(cl)
	if err == nil {
		s.log.Debug("released a pushed claim back to the queue", "module", cl.Assignment.Module, "attempt", cl.Assignment.Attempt)
		return
	}
	s.log.Warn("could not release a claim back to the queue; the next Claim takes it", "module", cl.Assignment.Module, "error", err)
	s.mu.Lock()
	s.inbox = append(s.inbox, cl)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Session) releaseTxn(cl coordinator.Claim) error {
	rev, err := strconv.ParseInt(cl.Token, 10, 64)
	if err != nil {
		return fmt.Errorf("claim token %q: %w", cl.Token, err)
	}
	data, err := marshalAssignment(cl.Assignment)
	if err != nil {
		return fmt.Errorf("encode assignment: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.c.cfg.DialTimeout)
	defer cancel()
	a := cl.Assignment
	ckey := s.prefix + "claims/" + escape(a.Module)
	qkey := queueKey(s.prefix, a.Module, a.Attempt)
	resp, err := s.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(ckey), "=", rev), clientv3.Compare(clientv3.LeaseValue(ckey), "=", s.lease),
			clientv3.Compare(clientv3.CreateRevision(qkey), "=", 0)).
		// Put before delete, as Publish: the master pairs the two.
		Then(clientv3.OpPut(qkey, string(data), clientv3.WithLease(s.runLease)), clientv3.OpDelete(ckey)).
		Commit()
	if err != nil {
		return fmt.Errorf("release %s: %w", a.Module, err)
	}
	if !resp.Succeeded {
		// The claim is gone already (the session's lease ended): the
		// master has its LostClaim.
		s.log.Debug("pushed claim already gone when released", "module", a.Module)
	}
	return nil
}

// ReleaseHeld gives back to the queue the claims this session took ahead
// and no Claim call returned, and makes any that land later go back too:
// for an instance that will run nothing more of the run (a master whose
// run was cancelled), ahead of its Close, so that the master sees them
// queued, never started, rather than held by an instance that will not
// answer for them.
func (s *Session) ReleaseHeld() { s.releaseHeld() }

// releaseHeld runs before a graceful Close: it withdraws this session's
// waiters and releases every pushed claim no Claim call returned, so they
// go back to the queue with the same attempt instead of being lost.
func (s *Session) releaseHeld() {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.spare = nil
	any := len(s.owned) > 0 || len(s.pushed) > 0 || len(s.inbox) > 0 || len(s.ahead) > 0
	s.mu.Unlock()
	if !any {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.c.cfg.DialTimeout)
	defer cancel()
	prefix := fmt.Sprintf("%swaiters/%05d/%x-", s.prefix, s.member.Index, int64(s.lease))
	if resp, err := s.c.cli.Delete(ctx, prefix, clientv3.WithPrefix()); err == nil {
		_ = s.waitView(ctx, resp.Header.Revision)
	}
	s.mu.Lock()
	held := s.inbox
	s.inbox = nil
	for _, h := range s.ahead {
		held = append(held, h.cl)
	}
	s.ahead = nil
	for k, cl := range s.pushed {
		held = append(held, cl)
		delete(s.pushed, k)
	}
	s.mu.Unlock()
	for _, cl := range held {
		if err := s.releaseTxn(cl); err != nil {
			s.log.Warn("could not release a pushed claim on close; the master will see it lost", "module", cl.Assignment.Module, "error", err)
		}
	}
}

// pickWaiterLocked chooses the waiter to push a to: the oldest one whose
// member can run a and has nothing queued it could take instead at a's
// priority or above. It marks the waiter used. Caller holds m.mu.
func (m *Session) pickWaiterLocked(a coordinator.Assignment) *waiterEntry {
	own := m.ownEnqueues[:0]
	for _, o := range m.ownEnqueues {
		if !o.done && (o.rev == 0 || o.rev > m.viewRev) {
			own = append(own, o)
		}
	}
	clear(m.ownEnqueues[len(own):])
	m.ownEnqueues = own
	var best *waiterEntry
	for _, w := range m.view.waiters {
		if w.used || (best != nil && w.createRev > best.createRev) {
			continue
		}
		e, ok := m.view.members[w.idx]
		if !ok || e.lease != w.lease || !coordinator.CanRun(a, e.m) || m.view.queuedFor(e.m, a.Priority) || m.ownQueuedFor(e.m, a.Priority) {
			continue
		}
		best = w
	}
	if best != nil {
		best.used = true
	}
	return best
}

// ownEnqueue is one of the master's Enqueues that its view may not show
// yet: in flight (rev 0) or queued at rev.
type ownEnqueue struct {
	a    coordinator.Assignment
	rev  int64
	done bool // pushed, failed, or seen by the view
	// pushing: its Txn pushes it to a waiter, so it will not be queued
	// (unless that waiter went, a race that costs order, not work).
	// Counting it as queued would stop every concurrent Enqueue from
	// pushing: a master enqueueing 200 ready modules at once pushed 1
	// and queued 199 while 15 other members waited.
	pushing bool
}

// ownQueuedFor is queuedFor for the master's Enqueues the view does not
// show yet. Caller holds m.mu.
func (m *Session) ownQueuedFor(mem coordinator.Member, prio int) bool {
	for _, o := range m.ownEnqueues {
		if !o.pushing && o.a.Priority >= prio && coordinator.CanRun(o.a, mem) {
			return true
		}
	}
	return false
}

// queuedFor reports whether the queue holds an item m can run at priority
// prio or above.
func (v *view) queuedFor(m coordinator.Member, prio int) bool {
	for _, it := range v.queue {
		if it.a.Priority < prio {
			return false
		}
		if coordinator.CanRun(it.a, m) {
			return true
		}
	}
	return false
}
