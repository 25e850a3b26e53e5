package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// Staged dispatch. On a chain, a dispatch step costs two raft commits in
// sequence: the worker's publish of module A, then, once the master's
// watch shows A's result, the master's enqueue of its dependent B (pushed
// to a waiting worker). Staging lets the publish do both. The master
// writes, ahead of time, the assignment of a first attempt that waits for
// exactly one dependency:
//
//	staged/MOD    (version 1: the assignment, on the run lease)
//
// Every member sees staged keys in its view. A Publish of a succeeded
// envelope of that dependency adds a nested Txn per staged dependent:
// compare that the staged key is still at version 1 and that the run is
// neither cancelled nor ended, then overwrite the staged key with ""
// (version 2: dispatched) and dispatch B as the master's enqueue would:
// claimed by the publishing session itself (held for its next Claim call,
// as a claim taken ahead) when it can run B and nothing queued for it
// comes first; else pushed to a waiting member that can run it (with the
// waiter's own compare, falling back to the queue); else queued.
//
// The master still calls Enqueue(B) when its scheduler finds B ready. For
// a module it staged, that Txn first looks at the staged key: absent (the
// Stage was never applied) the ordinary enqueue; at version 1 the same
// overwrite with "" and the ordinary enqueue, atomically; at version 2 B
// was dispatched by a member and Enqueue returns nil. The version
// compares make the member's dispatch and the master's exclusive, so B
// runs once. A failed dependency never dispatches B (the master decides,
// as without staging), nor does a cancelled or ended run. The staged keys
// stay, at version 2, until the run's lease ends.

// stagedEntry is a staged assignment not dispatched yet, in the view.
type stagedEntry struct {
	key string
	a   coordinator.Assignment
}

// stagedPutLocked applies a put of a staged key to the view. Caller holds
// s.mu.
func (s *Session) stagedPutLocked(rest string, kv *mvccpb.KeyValue) {
	mod, err := url.PathUnescape(rest)
	if err != nil {
		return
	}
	if kv.Version != 1 || len(kv.Value) == 0 {
		s.view.unstage(mod) // dispatched
		if s.master {
			s.firedSeen[mod] = true
		}
		return
	}
	var a coordinator.Assignment
	if err := json.Unmarshal(kv.Value, &a); err != nil || a.ValidateStaged() != nil {
		s.log.Warn("undecodable staged assignment in etcd; ignored", "key", string(kv.Key), "error", err)
		return
	}
	if _, ok := s.view.staged[mod]; ok {
		return
	}
	s.view.staged[mod] = &stagedEntry{key: string(kv.Key), a: a}
	dep := a.Dependencies[0]
	s.view.stagedBy[dep] = append(s.view.stagedBy[dep], mod)
}

// unstage forgets a staged module.
func (v *view) unstage(mod string) {
	st, ok := v.staged[mod]
	if !ok {
		return
	}
	delete(v.staged, mod)
	dep := st.a.Dependencies[0]
	mods := v.stagedBy[dep]
	drop(&mods, mod)
	if len(mods) == 0 {
		delete(v.stagedBy, dep)
	} else {
		v.stagedBy[dep] = mods
	}
}

// firePlan is one staged dependent a Publish dispatches in its Txn.
type firePlan struct {
	a    coordinator.Assignment
	self bool         // claimed by the publishing session
	w    *waiterEntry // else pushed to this waiter (or queued)
	op   clientv3.Op
	idx  int // index of op among the Publish Txn's ops
}

// fireWidth is the widest list of a fire op, for the server's ops limit.
const fireWidth = 5

// maxFires bounds the dependents one Publish dispatches, so its Txn stays
// well within etcd's ops limit (128) however wide the fan-out; the master
// enqueues the rest as it would without staging.
const maxFires = 16

// planFires plans the dispatch of the dependents staged on env's module,
// when env succeeded. self says whether the publishing session may claim
// one of them for itself (it holds no claim ahead). envBytes is the size
// of the envelope: a large one leaves the request no room for more.
func (s *Session) planFires(env coordinator.Envelope, envBytes int, self bool) []*firePlan {
	if env.Status != coordinator.StatusSucceeded || envBytes > s.c.cfg.maxEnvelopeBytes()/2 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mods := s.view.stagedBy[env.Module]
	if len(mods) == 0 || s.err != nil || s.view.cancel != nil || s.view.end != nil {
		return nil
	}
	if s.closing {
		self = false
	}
	var plans []*firePlan
	for _, mod := range mods {
		if len(plans) == maxFires {
			break
		}
		st := s.view.staged[mod]
		if st == nil {
			continue
		}
		a := st.a
		a.EnqueuedAt = time.Now()
		data, err := marshalAssignment(a)
		if err != nil {
			continue
		}
		p := &firePlan{a: a}
		qkey := queueKey(s.prefix, a.Module, a.Attempt)
		ckey := s.prefix + "claims/" + escape(a.Module)
		var dispatch []clientv3.Op
		switch {
		case self && coordinator.CanRun(a, s.member) && !s.queuedBeforeLocked(a.Priority):
			p.self, self = true, false
			cv, err := marshalClaim(claimValue{Module: a.Module, Attempt: a.Attempt, Member: s.member, Lease: int64(s.lease)})
			if err != nil {
				continue
			}
			dispatch = []clientv3.Op{clientv3.OpPut(ckey, string(cv), clientv3.WithLease(s.lease))}
		default:
			queue := clientv3.OpPut(qkey, string(data), clientv3.WithLease(s.runLease))
			p.w = s.pickWaiterLocked(a)
			if p.w == nil {
				dispatch = []clientv3.Op{queue}
				break
			}
			e := s.view.members[p.w.idx].m
			cv, err := marshalClaim(claimValue{Module: a.Module, Attempt: a.Attempt, Member: e, Lease: p.w.lease, Waiter: p.w.key, Assignment: data})
			if err != nil {
				p.w.used = false
				continue
			}
			dispatch = []clientv3.Op{clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(p.w.key), "=", p.w.createRev)},
				[]clientv3.Op{clientv3.OpDelete(p.w.key), clientv3.OpPut(ckey, string(cv), clientv3.WithLease(clientv3.LeaseID(p.w.lease)))},
				[]clientv3.Op{queue})}
		}
		p.op = clientv3.OpTxn(
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.Version(st.key), "=", 1),
				clientv3.Compare(clientv3.CreateRevision(qkey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(ckey), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(s.prefix+"cancel"), "=", 0),
				clientv3.Compare(clientv3.CreateRevision(s.prefix+"end"), "=", 0),
			},
			append([]clientv3.Op{clientv3.OpPut(st.key, "", clientv3.WithLease(s.runLease))}, dispatch...),
			nil)
		plans = append(plans, p)
	}
	return plans
}

// queuedBeforeLocked reports whether this session's next Claim would
// take a queued item at priority prio or above. Caller holds s.mu.
func (s *Session) queuedBeforeLocked(prio int) bool {
	it, _ := s.pickLocked(time.Now())
	return it != nil && it.a.Priority >= prio
}

// finishFires records the outcome of planned dispatches: r is the Publish
// Txn's result.
func (s *Session) finishFires(plans []*firePlan, r txnResult) {
	if len(plans) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range plans {
		// The getters are nil-safe: a missing answer reads as not applied.
		fired := r.err == nil && r.succeeded && p.idx < len(r.responses) && r.responses[p.idx].GetResponseTxn().GetSucceeded()
		switch {
		case r.err != nil && p.self:
			// Unknown: if it was applied the claim is ours (unsure).
			s.unsureLocked(p.a)
		case !fired:
			// Not dispatched here: the master enqueued it first, the run
			// was cancelled, or the publish itself failed.
		case p.self:
			s.c.fires.Add(1)
			s.holdLocked(coordinator.Claim{Assignment: p.a, ClaimedAt: time.Now(), Token: strconv.FormatInt(r.rev, 10)})
			s.log.Debug("dispatched a staged module to itself", "module", p.a.Module)
			continue
		default:
			s.c.fires.Add(1)
			s.log.Debug("dispatched a staged module", "module", p.a.Module, "waiter", p.w != nil)
		}
		if p.w != nil {
			p.w.used = false // pushed (the watch deletes it) or not: free either way
		}
	}
}

// Stage implements coordinator.MasterSession.
func (m *Master) Stage(ctx context.Context, a coordinator.Assignment) error {
	if err := a.ValidateStaged(); err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	m.mu.Lock()
	if m.enqueuedMods[a.Module] || m.stageTried[a.Module] {
		m.mu.Unlock()
		return nil // too late, or done already
	}
	m.stageTried[a.Module] = true
	done := make(chan struct{})
	m.staging[a.Module] = done
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.staging, a.Module)
		m.mu.Unlock()
		close(done)
	}()
	data, err := marshalAssignment(a)
	if err != nil {
		return fmt.Errorf("stage %s: %w", a.Module, err)
	}
	skey := m.prefix + "staged/" + escape(a.Module)
	qkey := queueKey(m.prefix, a.Module, a.Attempt)
	op := newTxnOp(a.Module,
		[]clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(skey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(qkey), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(m.prefix+"claims/"+escape(a.Module)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(m.prefix+"results/"+escape(a.Module)), "=", 0),
		},
		[]clientv3.Op{clientv3.OpPut(skey, string(data), clientv3.WithLease(m.runLease))}, nil)
	r := m.enq.submit(ctx, op)
	if r.err != nil {
		// It may have been applied: Enqueue looks at the key either way.
		return fmt.Errorf("stage %s: %w", a.Module, r.err)
	}
	if r.succeeded {
		m.log.Debug("staged", "module", a.Module, "after", a.Dependencies[0])
	}
	return nil
}

// wrapStaged wraps the enqueue Txn of a module the master tried to stage
// (see the comment at the top): the result's succeeded is false when a
// member dispatched it already, and inner unwraps the enqueue's own.
func (m *Master) wrapStaged(module string, op *txnOp) *txnOp {
	skey := m.prefix + "staged/" + escape(module)
	inner := clientv3.OpTxn(op.cmps, op.then, op.els)
	w := newTxnOp(module,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(skey), "=", 0)},
		[]clientv3.Op{inner},
		[]clientv3.Op{clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version(skey), "=", 1)},
			[]clientv3.Op{clientv3.OpPut(skey, "", clientv3.WithLease(m.runLease)), inner},
			nil)})
	w.nested = op.width() + 2
	return w
}

// unwrapStaged turns the result of a wrapStaged Txn into the enqueue's
// own, or reports that a member dispatched the module (fired).
func unwrapStaged(r txnResult) (inner txnResult, fired bool, err error) {
	if len(r.responses) == 0 {
		return r, false, fmt.Errorf("etcd answered a staged enqueue with no result")
	}
	t := r.responses[0].GetResponseTxn()
	if t == nil {
		return r, false, fmt.Errorf("etcd answered a staged enqueue with %T, not a Txn result", r.responses[0].Response)
	}
	if !r.succeeded {
		// The else branch: at version 1 (t succeeded) the enqueue is its
		// second op; at version 2 a member dispatched it.
		if !t.Succeeded {
			return r, true, nil
		}
		if len(t.Responses) < 2 || t.Responses[1].GetResponseTxn() == nil {
			return r, false, fmt.Errorf("etcd answered a staged enqueue without the enqueue's result")
		}
		t = t.Responses[1].GetResponseTxn()
	}
	return txnResult{rev: r.rev, succeeded: t.Succeeded, responses: t.Responses}, false, nil
}
