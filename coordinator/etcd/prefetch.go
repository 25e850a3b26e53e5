package etcd

import (
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// Prefetching. A member whose slots are all busy with modules that have
// run for prefetchAfter claims the item its next Claim call would pick
// and holds it, so that a slot that frees starts its next module at once
// while its Publish commits, instead of after it: with single-slot
// workers and modules of a few hundred milliseconds, that commit (4-5 ms
// with 16 workers publishing on 2 cores) was a worker's whole gap
// between two modules.
//
// Holding work an idle member could run would cost more than the gap it
// saves, so a member prefetches only while no other member waits with
// a slot that could run the item, and hands a prefetched claim back to
// the queue (same attempt, as a released push) as soon as such a member
// appears: it then claims it from the queue. Modules shorter than
// prefetchAfter never prefetch; for them Publish claims ahead in its own
// Txn (ahead.go), one commit per module or fewer. A prefetched claim is held
// until a Claim call takes it or the session closes (Close releases it);
// a session that dies takes it with its lease, and the master reports it
// lost, as any other claim.

// prefetchAfter is how long every slot must have been busy before the
// member prefetches.
const prefetchAfter = 20 * time.Millisecond

// yieldAfter is how long a member must wait for a prefetched claim it
// could run before the prefetching member hands it back.
const yieldAfter = 20 * time.Millisecond

// claimedLocked notes a claim Claim returns: it runs until its Publish.
// With every slot busy, a prefetch is armed. Caller holds s.mu.
func (s *Session) claimedLocked(cl coordinator.Claim) {
	s.running[cl.Assignment.Module] = time.Now()
	s.armPrefetchLocked()
}

// Publishing announces that the caller is about to Publish the envelope
// of cl, on another goroutine: a Claim call made from now on waits for
// that Publish as for one in flight (waitPublishLocked). The host
// publishes a module's envelope while the slot claims its next module,
// and without the announcement the Claim would often run before the
// Publish began.
func (s *Session) Publishing(cl coordinator.Claim) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pubSeq++
	s.pubPending[cl.Assignment.Module] = s.pubSeq
}

// beginPublish numbers a Publish of module, or takes the number its
// announcement got.
func (s *Session) beginPublish(module string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.running[module]; ok {
		s.ranLocked(time.Since(t))
	}
	if seq, ok := s.pubPending[module]; ok {
		return seq
	}
	s.pubSeq++
	s.pubPending[module] = s.pubSeq
	return s.pubSeq
}

// endPublish notes that Publish seq of module returned and wakes the
// Claim calls waiting for it.
func (s *Session) endPublish(module string, seq int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pubPending[module] == seq {
		delete(s.pubPending, module)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// armPrefetchLocked starts the prefetch timer if every slot is busy and
// none is armed or held. Caller holds s.mu.
func (s *Session) armPrefetchLocked() {
	// Only a member that declared its slots (a host does): one that did
	// not may claim any number of items at once, and is never busy.
	if s.member.Slots <= 0 || s.err != nil || s.closing || s.prefetchArmed || len(s.running) < s.member.Slots || s.holdsPrefetchLocked() {
		return
	}
	s.prefetchArmed = true
	s.afterLocked(s.c.prefetchAfter, s.prefetch)
}

// executingLocked counts the modules this member runs that are not being
// published. A slot whose module is being published is as good as free
// for prefetching: its Publish claims ahead for it (ahead.go) in the
// same commit, and a prefetch would be a Txn of its own racing that
// claim. Short modules whose Publish outlasts prefetchAfter on a loaded
// etcd made one prefetch Txn for every three or four modules before.
// Caller holds s.mu.
func (s *Session) executingLocked() int {
	n := 0
	for m := range s.running {
		if _, publishing := s.pubPending[m]; !publishing {
			n++
		}
	}
	return n
}

// holdsPrefetchLocked reports whether a prefetched claim is held.
func (s *Session) holdsPrefetchLocked() bool {
	for _, h := range s.ahead {
		if h.prefetched {
			return true
		}
	}
	return false
}

// prefetch claims the next item for a busy member, if it still is and no
// idle member could take the item instead.
func (s *Session) prefetch() {
	s.mu.Lock()
	s.prefetchArmed = false
	// aheadInFlight: a Publish is claiming for this member (ahead.go).
	if s.err != nil || s.closing || s.executingLocked() < s.member.Slots || len(s.ahead) > 0 || s.aheadInFlight > 0 || len(s.inbox) > 0 || s.viewRev < s.wroteRev {
		s.mu.Unlock()
		return
	}
	it, _ := s.pickLocked(time.Now())
	if it == nil || s.idleCanRunLocked(it.a) {
		s.mu.Unlock()
		return
	}
	s.inflight[it.key] = true
	s.prefetching = true
	hook := s.c.testPrefetching
	s.mu.Unlock()
	if hook != nil {
		hook(s)
	}

	cl, ok, _, err := s.tryClaim(s.ctx, it, nil)

	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, it.key)
	s.prefetching = false
	defer func() {
		// Wake the Claim calls waiting for this prefetch, whatever came
		// of it. (Deferred after the unlock, so it runs first.)
		close(s.changed)
		s.changed = make(chan struct{})
	}()
	switch {
	case err != nil:
		s.unsureLocked(it.a)
		return
	case !ok:
		s.taken[it.key] = it.modRev
		s.contention = 4 * spreadWidth
		s.c.conflicts.Add(1)
		s.log.Debug("prefetch lost to another claimer", "module", it.a.Module)
		return
	case s.closing:
		// Close released what was held while this Txn was in flight:
		// put this one back too, rather than let the lease take it.
		s.taken[it.key] = it.modRev
		s.mu.Unlock()
		s.release(cl)
		s.mu.Lock()
		return
	}
	s.taken[it.key] = it.modRev
	delete(s.unsure, it.a.Module)
	s.c.prefetches.Add(1)
	s.log.Debug("prefetched", "module", it.a.Module, "attempt", it.a.Attempt)
	s.ahead = append(s.ahead, &heldClaim{cl: cl, prefetched: true})
	// A member may have begun to wait while the claim was in flight.
	s.yieldPrefetchLocked()
}

// idleCanRunLocked reports whether another member waits (a waiter in the
// view) that can run a and has nothing queued it could take instead.
// Caller holds s.mu.
func (s *Session) idleCanRunLocked(a coordinator.Assignment) bool {
	for _, w := range s.view.waiters {
		if w.idx == s.member.Index || w.used {
			continue // ours, or a push to it is in flight
		}
		e, ok := s.view.members[w.idx]
		if !ok || e.lease != w.lease || !coordinator.CanRun(a, e.m) {
			continue
		}
		if !s.view.queuedFor(e.m, a.Priority) {
			return true
		}
	}
	return false
}

// yieldPrefetchLocked hands a prefetched claim back to the queue when a
// member that could run it waits with nothing else to take, and still
// does yieldAfter later: on a fleet of equal modules the members end
// them within milliseconds of each other, and one that frees its slot
// then takes what it prefetched at once; handing it back would only
// shuffle the run's last modules. Caller holds s.mu.
func (s *Session) yieldPrefetchLocked() {
	if s.yieldArmed || s.err != nil {
		return
	}
	for _, h := range s.ahead {
		if !h.prefetched || !s.idleCanRunLocked(h.cl.Assignment) {
			continue
		}
		s.yieldArmed = true
		s.afterLocked(yieldAfter, func() {
			s.mu.Lock()
			s.yieldArmed = false
			yield := s.err == nil && s.idleCanRunLocked(h.cl.Assignment) && drop(&s.ahead, h)
			s.mu.Unlock()
			if yield {
				s.log.Debug("a member waits for what this one prefetched; releasing it", "module", h.cl.Assignment.Module)
				s.release(h.cl)
			}
		})
		return // at most one held
	}
}

// waitPublishLocked reports whether a Claim call should wait before it
// picks from the queue for this session's Publishes that began (or were
// announced) before it, numbered up to before, and have not returned: such a Publish may claim ahead
// (or dispatch a staged module to this member) for the slot the call
// fills, and a Claim that picked meanwhile would take a second item. Not
// for Publishes that began later: on a busy multi-slot member some slot
// is nearly always publishing. Caller holds s.mu.
func (s *Session) waitPublishLocked(before int64) bool {
	if len(s.ahead) > 0 || len(s.inbox) > 0 {
		return false
	}
	for _, seq := range s.pubPending {
		if seq <= before {
			return true
		}
	}
	return false
}
