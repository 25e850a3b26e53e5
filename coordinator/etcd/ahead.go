package etcd

import (
	"context"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// Claiming ahead. A slot that publishes asks for work next, so Publish's
// Txn also claims the item the slot's next Claim call would pick, in a
// nested Txn with the claim Txn's own compares: one commit per module for
// a busy worker instead of two (publish, then claim). The claim is held
// for the session's next Claim call, which returns it at once. A claim
// held ahead that no Claim call takes within aheadGrace (the member
// stopped claiming) goes back to the queue with the same attempt, as a
// released push does, and so does any left at Close; a session that dies
// takes it with its lease, and the master reports it lost, as any other.

// aheadGrace is how long a claim taken ahead waits for a Claim call.
const aheadGrace = 100 * time.Millisecond

// Claiming deeper. A slot whose modules are much shorter than a commit
// (no-op modules: under a millisecond, against a Txn's 2-5 ms on a busy
// etcd) would wait for each Publish's Txn to bring its next claim. A
// session whose modules are short holds up to maxAheadDepth claims per
// slot ahead instead: the slot runs the next while the last one's Publish
// commits, and the Publishes that pile up meanwhile share the next Txn
// (batch.go), which claims for them all. Fewer commits than modules; the
// throughput run through hosts made ~1.2 Txns per module before. It
// holds work back from no member: a claim beyond the slot's next is not
// taken while another member waits with nothing queued it could take
// instead (idleCanRunLocked, as for prefetching).

// maxAheadDepth bounds the claims held ahead per slot for short modules.
const maxAheadDepth = 4

// shortRun is the moving average of its modules' run time under which a
// session claims deeper ahead.
const shortRun = 5 * time.Millisecond

// ranLocked adds a module's run time (Claim's return to its Publish) to
// the session's moving average. Caller holds s.mu.
func (s *Session) ranLocked(d time.Duration) {
	if s.runAvg == 0 {
		s.runAvg = d
		return
	}
	s.runAvg += (d - s.runAvg) / 4
}

// aheadDepthLocked is how many claims per slot a Publish may hold ahead:
// maxAheadDepth while the session's modules are short, else 1. Caller
// holds s.mu.
func (s *Session) aheadDepthLocked() int {
	if s.runAvg <= 0 || s.runAvg >= s.c.shortRun {
		return 1
	}
	return maxAheadDepth
}

// heldClaim is a claim taken ahead.
type heldClaim struct {
	cl coordinator.Claim
	// prefetched: taken while every slot was busy (prefetch.go), held
	// without a grace until a Claim call takes it.
	prefetched bool
}

// aheadPlan is the claim a Publish tries to take ahead.
type aheadPlan struct {
	it  *qitem
	op  clientv3.Op
	idx int // index of op among the Publish Txn's ops
	// prefetch: the claim a prefetch would take (prefetch.go), taken by
	// this Publish instead; held as a prefetched claim.
	prefetch bool
}

// planAheads picks the items to claim in the next Publish Txn, under one
// hold of s.mu. Only a session whose slots are all in use or asked for
// (held claims ahead count as asked for) is one whose next Claim is
// certain enough: with a claim already held ahead, it takes no second
// one, unless its modules are short (aheadDepthLocked).
func (s *Session) planAheads(module string, envBytes int) []*aheadPlan {
	if envBytes > s.c.cfg.maxEnvelopeBytes()/2 {
		return nil // keep the Txn well within the request limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.closing || s.viewRev < s.wroteRev {
		return nil
	}
	var plans []*aheadPlan
	for {
		// deeper: a claim beyond the one a slot's next Claim call takes.
		deeper := len(plans) > 0 || len(s.ahead) > 0 || !s.freeAfterLocked(module)
		if deeper && (s.aheadDepthLocked() <= 1 || len(s.ahead)+s.aheadInFlight >= maxAheadDepth*max(s.member.Slots, 1)) {
			if len(plans) == 0 && s.prefetchDueLocked() {
				if p := s.planClaimLocked(); p != nil {
					p.prefetch = true
					plans = append(plans, p)
				}
			}
			return plans
		}
		it, _ := s.pickLocked(time.Now())
		if it == nil || deeper && s.idleCanRunLocked(it.a) {
			return plans
		}
		p := s.claimPlanLocked(it)
		if p == nil {
			return plans
		}
		plans = append(plans, p)
	}
}

// prefetchDueLocked reports whether a Publish should take the claim the
// member's prefetch would take (prefetch.go) in its own Txn: every slot
// is busy with a module other than the ones being published, nothing is
// held or being claimed ahead, and the member's modules run longer than
// prefetchAfter, so the prefetch would follow anyway, as a Txn of its
// own. A single-slot worker whose next module starts from its prefetched
// claim publishes the last one while the next runs: with the prefetch in
// the Publish, it writes once a module instead of twice (16 workers on 2
// cores: every commit is another event in every member's watch). Caller
// holds s.mu.
func (s *Session) prefetchDueLocked() bool {
	return s.member.Slots > 0 && s.runAvg >= s.c.prefetchAfter && len(s.ahead) == 0 && s.aheadInFlight == 0 &&
		!s.prefetching && len(s.inbox) == 0 && s.executingLocked() >= s.member.Slots
}

// planClaimLocked plans the claim of the item the next Claim call would
// pick, unless a member that waits idle could run it. Caller holds s.mu.
func (s *Session) planClaimLocked() *aheadPlan {
	it, _ := s.pickLocked(time.Now())
	if it == nil || s.idleCanRunLocked(it.a) {
		return nil
	}
	return s.claimPlanLocked(it)
}

// claimPlanLocked plans the claim of it in a Publish Txn, or nil if its
// claim value cannot be encoded. Caller holds s.mu.
func (s *Session) claimPlanLocked(it *qitem) *aheadPlan {
	ckey := s.prefix + "claims/" + escape(it.a.Module)
	val, err := marshalClaim(claimValue{Module: it.a.Module, Attempt: it.a.Attempt, Member: s.member, Lease: int64(s.lease)})
	if err != nil {
		return nil
	}
	s.inflight[it.key] = true
	s.aheadInFlight++
	return &aheadPlan{it: it, op: clientv3.OpTxn(
		[]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(it.key), "=", it.modRev), clientv3.Compare(clientv3.CreateRevision(ckey), "=", 0)},
		[]clientv3.Op{clientv3.OpDelete(it.key), clientv3.OpPut(ckey, string(val), clientv3.WithLease(s.lease))},
		nil)}
}

// finishAheads records the outcome of the planned claims: r is the
// Publish Txn's result, whose responses hold each nested claim's at its
// plan's idx.
func (s *Session) finishAheads(plans []*aheadPlan, r txnResult) {
	if len(plans) == 0 {
		return
	}
	var back []coordinator.Claim
	s.mu.Lock()
	for _, p := range plans {
		if cl, release := s.finishAheadLocked(p, r); release {
			back = append(back, cl)
		}
	}
	s.mu.Unlock()
	for _, cl := range back {
		s.release(cl)
	}
}

// finishAheadLocked records the outcome of p and reports a claim it took
// that must go back to the queue at once (Close began meanwhile).
func (s *Session) finishAheadLocked(p *aheadPlan, r txnResult) (coordinator.Claim, bool) {
	delete(s.inflight, p.it.key)
	s.aheadInFlight--
	if r.err != nil {
		s.unsureLocked(p.it.a)
		return coordinator.Claim{}, false
	}
	if !r.succeeded || p.idx >= len(r.responses) {
		return coordinator.Claim{}, false
	}
	tr := r.responses[p.idx].GetResponseTxn()
	if tr == nil {
		return coordinator.Claim{}, false
	}
	s.taken[p.it.key] = p.it.modRev
	if !tr.Succeeded {
		s.contention = 4 * spreadWidth
		s.c.conflicts.Add(1)
		s.log.Debug("claim ahead lost to another claimer", "module", p.it.a.Module, "designee", p.it.designee)
		return coordinator.Claim{}, false
	}
	if s.contention > 0 {
		s.contention--
	}
	delete(s.unsure, p.it.a.Module)
	cl := coordinator.Claim{Assignment: p.it.a, ClaimedAt: time.Now(), Token: strconv.FormatInt(r.rev, 10)}
	if !p.prefetch {
		s.c.aheads.Add(1)
		s.holdLocked(cl)
		return coordinator.Claim{}, false
	}
	if s.closing {
		// Close released what was held while this Txn was in flight:
		// put this one back too, rather than let the lease take it.
		return cl, true
	}
	s.c.prefetches.Add(1)
	s.log.Debug("prefetched with a publish", "module", p.it.a.Module, "attempt", p.it.a.Attempt)
	s.ahead = append(s.ahead, &heldClaim{cl: cl, prefetched: true})
	// A member may have begun to wait while the claim was in flight.
	s.yieldPrefetchLocked()
	return coordinator.Claim{}, false
}

// canHoldAhead reports whether a Publish may take a claim for the next
// Claim call: the session lives and holds none ahead yet.
func (s *Session) canHoldAhead(module string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && !s.closing && len(s.ahead) == 0 && s.viewRev >= s.wroteRev && s.freeAfterLocked(module)
}

// freeAfterLocked reports whether the Publish of module frees a slot
// that nothing fills yet: the host publishes while the slot's next Claim
// call runs (host/master.go), and that call may already have taken a
// prefetched claim. Caller holds s.mu.
func (s *Session) freeAfterLocked(module string) bool {
	n := len(s.running)
	if _, ok := s.running[module]; ok {
		n--
	}
	return n < max(s.member.Slots, 1)
}

// holdLocked keeps cl, taken by a Publish, for the next Claim call, and
// releases it if none comes within aheadGrace. Caller holds s.mu.
func (s *Session) holdLocked(cl coordinator.Claim) {
	h := &heldClaim{cl: cl}
	s.ahead = append(s.ahead, h)
	close(s.changed)
	s.changed = make(chan struct{})
	if s.err != nil {
		return
	}
	s.afterLocked(aheadGrace, func() {
		if s.dropAhead(h) {
			s.log.Debug("no Claim took the claim held ahead; releasing it", "module", h.cl.Assignment.Module)
			s.release(h.cl)
		}
	})
}

// afterLocked runs f after d on a goroutine of the session's, unless the
// session ends first. Caller holds s.mu and has seen the session live
// (s.err nil), so the goroutine is counted before Close waits for them.
func (s *Session) afterLocked(d time.Duration, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			f()
		case <-s.ctx.Done():
		}
	}()
}

// dropAhead removes h from the claims held ahead and reports whether it
// was still there.
func (s *Session) dropAhead(h *heldClaim) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return drop(&s.ahead, h)
}

// drop removes x from *list and reports whether it was there. It does not
// write into the old backing array, which a caller may still range over.
func drop[T comparable](list *[]T, x T) bool {
	for i, y := range *list {
		if y == x {
			*list = append((*list)[:i:i], (*list)[i+1:]...)
			return true
		}
	}
	return false
}

// Registering ahead. When Publish has nothing to claim ahead, its Txn
// registers the waiter of the slot's next Claim call instead (a spare):
// registered in a Txn of its own after the publish, the waiter would hit
// etcd at the moment the master's push does, and the two would share or
// queue behind one fsync. The next Claim call adopts the spare as its own
// waiter; one not adopted within aheadGrace is withdrawn, and a push it
// took is released, as for a claim taken ahead.

// planSpare allocates the key of a spare waiter for a Publish that claims
// nothing ahead, or "".
func (s *Session) planSpare(module string, holding bool) string {
	if holding {
		return ""
	}
	s.mu.Lock()
	n := len(s.spare)
	filled := s.holdsPrefetchLocked() || !s.freeAfterLocked(module)
	s.mu.Unlock()
	if filled {
		return "" // the next Claim call takes what was prefetched
	}
	if n > 0 {
		return "" // one is enough until a Claim call adopts it
	}
	return s.newWaiterKey()
}

// finishSpare records the spare waiter of a Publish: r is its result.
func (s *Session) finishSpare(key string, r txnResult) {
	if key == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.err != nil || !r.succeeded {
		// Not written, or unknown: a push to it, if it exists, goes to
		// the inbox.
		delete(s.owned, key)
		return
	}
	w := &waiter{key: key, rev: r.rev}
	s.spare = append(s.spare, w)
	s.expireSpareLocked(w, aheadGrace)
}

// Registering early. A worker that waits for the run to start (WaitRun)
// registers one waiter per slot meanwhile, as spares for its first Claim
// calls: a fleet whose workers wait for the master then gets its first
// assignments pushed in the master's first enqueue commits, instead of
// every worker racing for the head of a new queue (a claim Txn each,
// most of them lost) once it sees the run start. Their grace starts when
// WaitRun returns: the worker claims once it checked the run record and
// started its plugins.

// earlyGrace is how long after WaitRun a waiter it registered waits for a
// Claim call to adopt it.
const earlyGrace = time.Second

// maxEarly bounds the waiters WaitRun registers, well within the ops
// limit of one Txn.
const maxEarly = 16

// registerEarly registers this worker's early waiters (none for the
// master, which enqueues). A failure only loses the shortcut.
func (s *Session) registerEarly() {
	s.mu.Lock()
	once := !s.master && !s.earlyDone
	s.earlyDone = true
	s.mu.Unlock()
	if !once {
		return
	}
	var keys []string
	for range min(s.member.Slots, maxEarly) {
		if k := s.newWaiterKey(); k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpPut(k, "", clientv3.WithLease(s.lease))
	}
	// Not the caller's ctx, as register: a waiter written after its
	// withdrawal would take a push nobody waits for.
	pctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.DialTimeout)
	defer cancel()
	resp, err := s.c.cli.Txn(pctx).Then(ops...).Commit()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Unknown: disowned, a push to one goes to the inbox.
		for _, k := range keys {
			delete(s.owned, k)
		}
		s.log.Debug("could not register waiters early", "error", err)
		return
	}
	for _, k := range keys {
		w := &waiter{key: k, rev: resp.Header.Revision}
		s.spare = append(s.spare, w)
		s.early = append(s.early, w)
	}
}

// expireEarly starts the grace of the early waiters.
func (s *Session) expireEarly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.early {
		s.expireSpareLocked(w, earlyGrace)
	}
	s.early = nil
}

// expireSpareLocked withdraws spare w after grace unless a Claim call
// adopted it, releasing what was pushed to it. Caller holds s.mu.
func (s *Session) expireSpareLocked(w *waiter, grace time.Duration) {
	if s.err != nil {
		return
	}
	s.afterLocked(grace, func() {
		if !s.dropSpare(w) {
			return // adopted by a Claim call
		}
		if cl := s.withdraw(w); cl != nil {
			s.log.Debug("no Claim adopted the waiter a push went to; releasing the claim", "module", cl.Assignment.Module)
			s.release(*cl)
		}
	})
}

// dropSpare removes w from the spare waiters and reports whether it was
// still there.
func (s *Session) dropSpare(w *waiter) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return drop(&s.spare, w)
}

// takeSparePushedLocked returns a claim pushed to a spare waiter that no
// Claim call adopted yet.
func (s *Session) takeSparePushedLocked() (coordinator.Claim, bool) {
	for i, w := range s.spare {
		if cl, ok := s.pushed[w.key]; ok {
			delete(s.pushed, w.key)
			delete(s.owned, w.key)
			s.spare = append(s.spare[:i:i], s.spare[i+1:]...)
			return cl, true
		}
	}
	return coordinator.Claim{}, false
}

// unsureLocked notes that a claim Txn of ours for a failed without an
// answer: it may have been applied, and then the claim is ours with no
// Claim call to return it. If the view already shows it, it goes to the
// inbox now; otherwise the watch puts it there when it arrives
// (claimSeenLocked). Caller holds s.mu.
func (s *Session) unsureLocked(a coordinator.Assignment) {
	s.unsure[a.Module] = a
	if ce, ok := s.view.claims[a.Module]; ok {
		s.claimSeenLocked(ce)
	}
}

// claimSeenLocked handles a claim the view shows for a module whose claim
// Txn's outcome we did not learn: ours goes to the inbox for the next
// Claim call. It reports whether it did. Caller holds s.mu.
func (s *Session) claimSeenLocked(ce claimEntry) bool {
	a, ok := s.unsure[ce.module]
	if !ok {
		return false
	}
	if s.inflight[queueKey(s.prefix, a.Module, a.Attempt)] {
		// A claim Txn for it is in flight again: its answer decides.
		return false
	}
	cv := ce.value()
	delete(s.unsure, cv.Module)
	if cv.Waiter != "" || cv.Member.Index != s.member.Index || cv.Lease != int64(s.lease) || cv.Attempt != a.Attempt {
		return false // someone else's, or a push (handled as such)
	}
	s.log.Warn("a claim whose Txn failed without an answer was applied; the next Claim returns it", "module", cv.Module)
	s.inbox = append(s.inbox, coordinator.Claim{Assignment: a, ClaimedAt: time.Now(), Token: strconv.FormatInt(ce.createRev, 10)})
	return true
}
