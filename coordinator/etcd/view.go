package etcd

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// qitem is one queued assignment in the local view.
type qitem struct {
	key       string
	a         coordinator.Assignment
	createRev int64
	modRev    int64
	// designee is the member index this item is meant for, or -1 (open:
	// anyone may try it). seen is when it became visible or designated
	// here; other members may take it once the grace after seen passes.
	designee int
	seen     time.Time
	// fit caches whether this session's member can run the item
	// (coordinator.CanRun): 0 not known yet, 1 yes, -1 no. A claim loop
	// looks at every queued item it cannot run each time the view
	// changes: a master whose slot runs none of 2,000 queued modules
	// spent an eighth of its CPU there.
	fit int8
}

// view is a session's local copy of its run, kept by the watch.
type view struct {
	members map[int]memberEntry
	// queue is sorted by priority (descending), then create revision: the
	// claim order. qindex finds items by key.
	queue  []*qitem
	qindex map[string]*qitem
	claims map[string]claimEntry // by module
	// results: module -> mod revision of its latest result.
	results map[string]int64
	info    *coordinator.RunInfo
	cancel  *string
	end     *coordinator.Status

	// Designation (see designate): claims held and queued items designated
	// per member index, and the members seen claiming at least once.
	held     map[int]int
	pending  map[int]int
	claimers map[int]bool
	// stale: a claim or member change since the last redesignation, which
	// runs once per revision (see settle).
	stale bool

	// waiters: blocked Claim calls of every member, by key (push.go).
	waiters map[string]*waiterEntry

	// staged: assignments staged and not dispatched yet, by module;
	// stagedBy: the staged modules waiting for each module (staged.go).
	staged   map[string]*stagedEntry
	stagedBy map[string][]string
}

type memberEntry struct {
	m         coordinator.Member
	lease     int64
	createRev int64
}

// claimEntry is a claim in the view. Its value stays undecoded until
// something needs more than its claimant, which the claim's lease names:
// every member sees every claim, and decoding each (the claimant's whole
// member record, a pushed claim's assignment) cost each member 12-16 µs
// of CPU per claim warm, ~30 µs in a worker woken from idle, all at the
// moment a push wakes every member on a pushed worker's critical path.
type claimEntry struct {
	module    string
	idx       int // the claimant's member index
	lease     int64
	createRev int64
	raw       []byte
}

// value decodes the claim. A claim this session could not decode (never
// written by modpipe) names what its key and lease say.
func (ce claimEntry) value() claimValue {
	var cv claimValue
	if err := json.Unmarshal(ce.raw, &cv); err != nil {
		return claimValue{Module: ce.module, Member: coordinator.Member{Index: ce.idx}, Lease: ce.lease}
	}
	return cv
}

func newView() *view {
	return &view{
		members: map[int]memberEntry{},
		qindex:  map[string]*qitem{},
		claims:  map[string]claimEntry{},
		results: map[string]int64{},
		held:    map[int]int{}, pending: map[int]int{}, claimers: map[int]bool{},
		waiters: map[string]*waiterEntry{},
		staged:  map[string]*stagedEntry{}, stagedBy: map[string][]string{},
	}
}

func (v *view) sortedMembers() []coordinator.Member {
	out := make([]coordinator.Member, 0, len(v.members))
	for _, e := range v.members {
		out = append(out, e.m)
	}
	slices.SortFunc(out, func(a, b coordinator.Member) int { return a.Index - b.Index })
	return out
}

func queueLess(a, b *qitem) int {
	if a.a.Priority != b.a.Priority {
		return b.a.Priority - a.a.Priority
	}
	switch {
	case a.createRev < b.createRev:
		return -1
	case a.createRev > b.createRev:
		return 1
	}
	return strings.Compare(a.key, b.key)
}

// putQueued inserts or updates an item; it reports whether it is new.
func (v *view) putQueued(it *qitem) bool {
	if old, ok := v.qindex[it.key]; ok {
		old.a, old.modRev, old.fit = it.a, it.modRev, 0
		return false
	}
	i, _ := slices.BinarySearchFunc(v.queue, it, queueLess)
	v.queue = slices.Insert(v.queue, i, it)
	v.qindex[it.key] = it
	return true
}

func (v *view) removeQueued(key string) {
	it, ok := v.qindex[key]
	if !ok {
		return
	}
	delete(v.qindex, key)
	if it.designee >= 0 {
		v.pending[it.designee]--
	}
	if i, found := slices.BinarySearchFunc(v.queue, it, queueLess); found && v.queue[i] == it {
		v.queue = slices.Delete(v.queue, i, i+1)
		return
	}
	v.queue = slices.DeleteFunc(v.queue, func(x *qitem) bool { return x == it })
}

// Designation keeps idle members from racing for the same new key (every
// losing claim Txn is still a raft proposal, fsynced like a winning one).
// Each ready item is designated to one member with a free slot: Slots
// minus the claims it holds minus the items already designated to it.
// Only members that have claimed before are candidates, so a member that
// never runs claim loops (a master that only schedules) is never waited
// for. The choice is a pure function of the view, and every session
// applies the same events in the same revision order, so all members agree
// on the designee without talking to each other. The designee's claimers
// take the item first; others skip it for a short grace and then treat it
// as open, so a designee that does not claim (its claimers are elsewhere,
// it stopped) delays the item but never strands it. Items nobody has room
// for stay open and are designated as slots free up, in queue order.

// designate designates it to the member with the most free slots that can
// run it (ties split by the item's create revision), if any has one.
func (v *view) designate(it *qitem, now time.Time) {
	var tied []int
	best := 0
	for idx, e := range v.members {
		if e.m.Slots <= 0 || !v.claimers[idx] || !coordinator.CanRun(it.a, e.m) {
			continue
		}
		free := e.m.Slots - v.held[idx] - v.pending[idx]
		switch {
		case free <= 0 || free < best:
		case free > best:
			best, tied = free, append(tied[:0], idx)
		default:
			tied = append(tied, idx)
		}
	}
	if len(tied) == 0 {
		return
	}
	slices.Sort(tied)
	it.designee = tied[it.createRev%int64(len(tied))]
	it.seen = now
	v.pending[it.designee]++
}

// anyFree reports whether some candidate member has a free slot.
func (v *view) anyFree() bool {
	for idx, e := range v.members {
		if e.m.Slots > 0 && v.claimers[idx] && e.m.Slots-v.held[idx]-v.pending[idx] > 0 {
			return true
		}
	}
	return false
}

// redesignate designates open items, in claim order, while slots are free.
func (v *view) redesignate(now time.Time) {
	for _, it := range v.queue {
		if !v.anyFree() {
			return
		}
		if it.designee < 0 {
			v.designate(it, now)
		}
	}
}

// claimAdded counts a new claim of member idx.
func (v *view) claimAdded(idx int) {
	v.held[idx]++
	if !v.claimers[idx] {
		v.claimers[idx] = true
		v.stale = true
	}
}

// claimRemoved frees the slot of a claim of member idx.
func (v *view) claimRemoved(idx int) {
	v.held[idx]--
	v.stale = true
}

// memberGone opens the items designated to member idx and forgets it.
func (v *view) memberGone(idx int) {
	for _, it := range v.queue {
		if it.designee == idx {
			it.designee = -1
		}
	}
	delete(v.pending, idx)
	delete(v.held, idx)
	delete(v.claimers, idx)
	v.stale = true
}

// settle redesignates after the claim and member changes of one revision.
// Once per revision rather than per event: a Publish that claims ahead
// deletes its claim and creates the next in one revision, and designating
// an item to its member in between would leave that item designated to a
// member that is busy again (every other member skips it for the grace,
// and it counts against that member's free slots until claimed). Every
// member applies the same revisions, so all still agree.
func (v *view) settle(now time.Time) {
	if v.stale {
		v.stale = false
		v.redesignate(now)
	}
}

// claimEntryOf makes the view's entry for a claim key's put (rest is the
// key's escaped module). The claimant is the member whose session lease
// the claim is on; only a claim whose lease the view does not know (a
// re-read lists claims before members) is decoded for it.
func (s *Session) claimEntryOf(rest string, kv *mvccpb.KeyValue) (claimEntry, bool) {
	mod, err := url.PathUnescape(rest)
	if err != nil {
		return claimEntry{}, false
	}
	ce := claimEntry{module: mod, lease: kv.Lease, createRev: kv.CreateRevision, raw: kv.Value}
	for idx, e := range s.view.members {
		if e.lease == kv.Lease {
			ce.idx = idx
			return ce, true
		}
	}
	var cv claimValue
	if err := json.Unmarshal(kv.Value, &cv); err != nil {
		return claimEntry{}, false
	}
	ce.idx = cv.Member.Index
	return ce, true
}

// kind splits a key of the run into its kind ("members", "queue", "run",
// ...) and the rest.
func (s *Session) kind(key []byte) (string, string) {
	rel := strings.TrimPrefix(string(key), s.prefix)
	kind, rest, _ := strings.Cut(rel, "/")
	return kind, rest
}

// applyEventsLocked applies one watch response. It returns a non-nil error
// when the session must end (master lost, run finished, own lease gone).
// Caller holds s.mu.
func (s *Session) applyEventsLocked(events []*clientv3.Event) error {
	// A result put and the claim delete of one Publish share a revision.
	// The module comes from the key: decoding envelopes here would cost
	// every member a JSON decode of every result.
	// A claim released back to the queue (push.go) deletes the claim and
	// puts its queue key in one revision too: neither is a lost claim.
	var published, requeued map[string]int64
	for _, ev := range events {
		if ev.Type == mvccpb.PUT {
			switch k, rest := s.kind(ev.Kv.Key); k {
			case "results":
				if mod, err := url.PathUnescape(rest); err == nil {
					if published == nil {
						published = map[string]int64{}
					}
					published[mod] = ev.Kv.ModRevision
				}
			case "queue":
				if mod, ok := queueModule(rest); ok {
					if requeued == nil {
						requeued = map[string]int64{}
					}
					requeued[mod] = ev.Kv.ModRevision
				}
			}
		}
	}
	var toEnd error
	queueGrew := false
	now := time.Now()
	rev := int64(0)
	for _, ev := range events {
		if ev.Kv.ModRevision != rev {
			s.view.settle(now)
			rev = ev.Kv.ModRevision
		}
		kind, rest := s.kind(ev.Kv.Key)
		key := string(ev.Kv.Key)
		if ev.Type == mvccpb.DELETE {
			// Deletes carry no previous value (the watch does not ask for
			// it: that would make etcd read and send every deleted queue
			// entry to every member). Every key deleted was in the join
			// snapshot or created since, so the view holds what it was.
			switch kind {
			case "members":
				idx, err := strconv.Atoi(rest)
				if err != nil {
					continue
				}
				e, ok := s.view.members[idx]
				if !ok {
					continue
				}
				if err := s.memberLeftLocked(e.m, e.lease); err != nil && toEnd == nil {
					toEnd = err
				}
				s.view.memberGone(idx)
			case "queue":
				s.view.removeQueued(key)
				delete(s.taken, key)
				queueGrew = true // wakes claimers waiting for the view to catch up
			case "claims":
				mod, err := url.PathUnescape(rest)
				if err != nil {
					continue
				}
				ce, ok := s.view.claims[mod]
				if !ok {
					continue
				}
				delete(s.view.claims, mod)
				s.view.claimRemoved(ce.idx)
				if published[mod] != ev.Kv.ModRevision && requeued[mod] != ev.Kv.ModRevision {
					s.claimLostLocked(ce)
				}
			case "waiters":
				delete(s.view.waiters, key)
			case "staged":
				if mod, err := url.PathUnescape(rest); err == nil {
					s.view.unstage(mod)
				}
			}
			continue
		}
		switch kind {
		case "members":
			var m coordinator.Member
			if json.Unmarshal(ev.Kv.Value, &m) == nil {
				s.memberJoinedLocked(memberEntry{m: m, lease: ev.Kv.Lease, createRev: ev.Kv.CreateRevision})
			}
		case "queue":
			var a coordinator.Assignment
			if json.Unmarshal(ev.Kv.Value, &a) == nil {
				it := &qitem{key: key, a: a, createRev: ev.Kv.CreateRevision, modRev: ev.Kv.ModRevision, designee: -1}
				if s.view.putQueued(it) {
					s.view.designate(it, now)
					queueGrew = true
				}
			}
		case "claims":
			if ce, ok := s.claimEntryOf(rest, ev.Kv); ok {
				if _, ok := s.view.claims[ce.module]; !ok {
					s.view.claimAdded(ce.idx)
				}
				s.view.claims[ce.module] = ce
				if s.pushedLocked(ce, now) || s.claimSeenLocked(ce) {
					queueGrew = true // wakes the Claim call that gets it
				}
			}
		case "waiters":
			s.waiterPutLocked(key, rest, ev.Kv)
		case "staged":
			s.stagedPutLocked(rest, ev.Kv)
		case "results":
			s.resultLocked(ev.Kv)
		default:
			if err := s.singletonLocked(kind, ev.Kv); err != nil && toEnd == nil {
				toEnd = err
			}
		}
	}
	s.view.settle(now)
	if queueGrew {
		close(s.changed)
		s.changed = make(chan struct{})
		s.armPrefetchLocked()
	}
	s.yieldPrefetchLocked()
	return toEnd
}

// applySnapshotLocked replaces the view with a full read of the run and
// reports every difference as the watch would have: joins and leaves,
// lost claims, undelivered results. Caller holds s.mu.
func (s *Session) applySnapshotLocked(snap *clientv3.GetResponse) error {
	old := s.view
	s.view = newView()
	s.view.results = old.results
	var toEnd error
	var newResults []*mvccpb.KeyValue
	for _, kv := range snap.Kvs {
		kind, _ := s.kind(kv.Key)
		switch kind {
		case "members":
			var m coordinator.Member
			if json.Unmarshal(kv.Value, &m) == nil {
				s.view.members[m.Index] = memberEntry{m: m, lease: kv.Lease, createRev: kv.CreateRevision}
			}
		case "queue":
			var a coordinator.Assignment
			if json.Unmarshal(kv.Value, &a) == nil {
				s.view.putQueued(&qitem{key: string(kv.Key), a: a, createRev: kv.CreateRevision, modRev: kv.ModRevision, designee: -1})
			}
		case "claims":
			_, rest := s.kind(kv.Key)
			if ce, ok := s.claimEntryOf(rest, kv); ok {
				s.view.claims[ce.module] = ce
				s.view.held[ce.idx]++
				s.view.claimers[ce.idx] = true
				if waiter, cl, ok := s.pushOf(ce, time.Now()); ok {
					if _, ok := s.pushed[waiter]; !ok && s.owned[waiter] {
						s.pushed[waiter] = cl
					}
				}
			}
		case "waiters":
			_, rest := s.kind(kv.Key)
			s.waiterPutLocked(string(kv.Key), rest, kv)
		case "staged":
			_, rest := s.kind(kv.Key)
			s.stagedPutLocked(rest, kv)
		case "results":
			newResults = append(newResults, kv)
		default:
			if err := s.singletonLocked(kind, kv); err != nil && toEnd == nil {
				toEnd = err
			}
		}
	}
	for _, kv := range newResults {
		s.resultLocked(kv)
	}
	// Members that claimed before stay candidates; then designate the
	// queue afresh (a re-read may disagree with other members' histories
	// for a moment; that costs at most a lost race, never a claim).
	for idx := range old.claimers {
		if _, ok := s.view.members[idx]; ok {
			s.view.claimers[idx] = true
		}
	}
	s.view.redesignate(time.Now())
	// Membership differences, in index order.
	for _, m := range old.sortedMembers() {
		now, ok := s.view.members[m.Index]
		if ok && now.createRev == old.members[m.Index].createRev {
			continue
		}
		if err := s.memberLeftLocked(m, old.members[m.Index].lease); err != nil && toEnd == nil {
			toEnd = err
		}
	}
	for _, m := range s.view.sortedMembers() {
		if o, ok := old.members[m.Index]; !ok || o.createRev != s.view.members[m.Index].createRev {
			s.broadcastLocked(coordinator.MemberEvent{Kind: coordinator.MemberJoined, Member: m})
		}
	}
	// A claim gone from the snapshot was lost unless a result was
	// published after it was taken.
	for mod, ce := range old.claims {
		if now, ok := s.view.claims[mod]; ok && now.createRev == ce.createRev {
			continue
		}
		if s.view.results[mod] > ce.createRev {
			continue
		}
		if s.view.requeuedSince(mod, ce.createRev) {
			continue // released back to the queue, same attempt
		}
		s.claimLostLocked(ce)
	}
	for key := range s.taken {
		if _, ok := s.view.qindex[key]; !ok {
			delete(s.taken, key)
		}
	}
	for _, w := range old.waiters {
		if nw, ok := s.view.waiters[w.key]; ok && w.used {
			nw.used = true // a push to it may still be in flight
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	if s.view.end == nil && old.end != nil {
		s.view.end = old.end
	}
	s.yieldPrefetchLocked()
	return toEnd
}

func (s *Session) broadcastLocked(ev coordinator.MemberEvent) {
	for w := range s.watchers {
		w.Put(ev)
	}
}

func (s *Session) memberJoinedLocked(e memberEntry) {
	if old, ok := s.view.members[e.m.Index]; ok && old.createRev == e.createRev {
		s.view.members[e.m.Index] = e
		return
	}
	s.view.members[e.m.Index] = e
	if e.m.Index != s.member.Index {
		s.log.Info("member joined", "member", e.m.Index, "host", e.m.Host, "capabilities", e.m.Capabilities)
	}
	s.broadcastLocked(coordinator.MemberEvent{Kind: coordinator.MemberJoined, Member: e.m})
}

func (s *Session) memberLeftLocked(m coordinator.Member, lease int64) error {
	delete(s.view.members, m.Index)
	s.broadcastLocked(coordinator.MemberEvent{Kind: coordinator.MemberLeft, Member: m})
	if m.Index == s.member.Index && lease == int64(s.lease) {
		return coordinator.ErrSessionLost // our own lease expired server-side
	}
	if m.Index != s.member.Index {
		s.log.Info("member left", "member", m.Index, "host", m.Host)
	}
	if m.Index == 0 && !s.master && s.view.end == nil {
		return coordinator.ErrMasterLost
	}
	return nil
}

func (s *Session) claimLostLocked(ce claimEntry) {
	if !s.master {
		return
	}
	cv := ce.value()
	l := coordinator.LostClaim{Module: cv.Module, Attempt: cv.Attempt, Member: cv.Member}
	s.log.Info("claim lost", "module", l.Module, "attempt", l.Attempt, "member", l.Member.Index, "host", l.Member.Host)
	s.lost.Put(l)
}

func (s *Session) resultLocked(kv *mvccpb.KeyValue) {
	if !s.master {
		// Workers only need to know a result exists (Result reads etcd).
		if _, rest := s.kind(kv.Key); rest != "" {
			if mod, err := url.PathUnescape(rest); err == nil {
				s.view.results[mod] = kv.ModRevision
			}
		}
		return
	}
	var env coordinator.Envelope
	if err := json.Unmarshal(kv.Value, &env); err != nil {
		s.log.Error("undecodable result envelope in etcd; ignored", "key", string(kv.Key), "error", err)
		return
	}
	if kv.ModRevision <= s.delivered[env.Module] {
		return
	}
	s.view.results[env.Module] = kv.ModRevision
	s.delivered[env.Module] = kv.ModRevision
	s.results.Put(env)
	s.log.Debug("result received", "module", env.Module, "status", env.Status, "member", env.Instance, "host", env.Host)
}

// singletonLocked applies run, cancel and end.
func (s *Session) singletonLocked(kind string, kv *mvccpb.KeyValue) error {
	switch kind {
	case "run":
		if s.view.info != nil {
			return nil
		}
		var info coordinator.RunInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			s.log.Error("undecodable run record in etcd", "error", err)
			return nil
		}
		s.view.info = &info
		select {
		case <-s.infoReady:
		default:
			close(s.infoReady)
		}
	case "cancel":
		if s.view.cancel != nil {
			return nil
		}
		reason := string(kv.Value)
		s.view.cancel = &reason
		select {
		case <-s.cancelled:
		default:
			close(s.cancelled)
			s.log.Info("run cancelled", "reason", reason)
		}
	case "end":
		st := coordinator.Status(kv.Value)
		s.view.end = &st
		if !s.master {
			return &coordinator.RunFinishedError{Status: st}
		}
	case "runlease":
		if _, err := strconv.ParseInt(string(kv.Value), 10, 64); err != nil {
			s.log.Warn("run lease key holds no lease id", "value", string(kv.Value))
		}
	}
	return nil
}
