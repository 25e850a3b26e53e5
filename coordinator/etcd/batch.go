package etcd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Group commit. Every etcd write is a raft proposal that the leader
// fsyncs before it answers, so with one Txn per Enqueue (or Publish) the
// fsync rate caps the run. A committer coalesces the conditional writes
// that callers of one session issue concurrently into one Txn whose
// success branch holds one nested Txn per caller: each nested Txn keeps
// its own compares and its own result, so every caller gets exactly the
// answer a Txn of its own would have given (already queued, still
// claimed, not the claimant), and they all share one fsync.
//
// A batch is whatever is waiting when the previous Txn returns: a lone
// caller is committed at once (no timers), and the batch size adapts to
// the load by itself. Batches respect the server's limits (ops per Txn,
// request bytes) and never hold two writes of one module (etcd refuses a
// Txn that puts one key twice, and the second write's compares must see
// the first one's effect): the later one waits for the next batch.

// maxTxnOps is etcd's default --max-txn-ops.
const maxTxnOps = 128

// opOverhead is a generous per-key allowance for protobuf framing when
// estimating the request size of a batch.
const opOverhead = 64

// errCommitterClosed tells a caller its write was never sent because the
// session ended; it then writes directly, as without group commit, so its
// answer (ErrNotClaimant, most often) is the same as before.
var errCommitterClosed = errors.New("group commit stopped: the session ended")

// txnOp is one caller's conditional write.
type txnOp struct {
	module    string
	cmps      []clientv3.Cmp
	then, els []clientv3.Op
	size      int // estimated bytes on the wire
	// nested is the width of a Txn nested in then or els (0: none): the
	// server gives it what its parent leaves of the ops limit.
	nested int
	// push: an Enqueue that pushes to a waiting member (take).
	push bool
	done chan txnResult
}

// txnResult is what a Txn of the op's own would have returned.
type txnResult struct {
	rev       int64
	succeeded bool
	responses []*pb.ResponseOp
	err       error
}

func newTxnOp(module string, cmps []clientv3.Cmp, then, els []clientv3.Op) *txnOp {
	size := opOverhead
	for _, c := range cmps {
		size += len(c.KeyBytes()) + opOverhead
	}
	for _, ops := range [][]clientv3.Op{then, els} {
		for _, o := range ops {
			size += len(o.KeyBytes()) + len(o.ValueBytes()) + opOverhead
			if o.IsTxn() {
				cmps, thn, el := o.Txn()
				size += newTxnOp(module, cmps, thn, el).size
			}
		}
	}
	return &txnOp{module: module, cmps: cmps, then: then, els: els, size: size, done: make(chan txnResult, 1)}
}

// width is what the server counts for a Txn: the longest of its compare,
// success and failure lists.
func (o *txnOp) width() int { return max(len(o.cmps), len(o.then), len(o.els)) + o.nested }

// committer group-commits one kind of write of one session. Its run
// goroutine is owned by the session (s.wg) and stops with it.
type committer struct {
	cli      *clientv3.Client
	maxBytes int
	maxOps   int

	mu     sync.Mutex
	queue  []*txnOp
	closed bool
	// busy: a batch is being written, by run or by a caller that found
	// the committer idle (submit); one at a time, so a module's writes
	// land in the order they were submitted.
	busy bool
	wake chan struct{} // capacity 1: "the queue may be non-empty"

	// txns counts Txns sent, writes the writes they carried (tests and
	// benchmarks: writes/txns is the mean batch).
	txns, writes atomic.Int64

	// testGate, when set by a test (under mu), runs before each batch is
	// taken, so a test can let writes pile up.
	testGate func()
}

func newCommitter(cli *clientv3.Client, maxRequestBytes int) *committer {
	return &committer{cli: cli, maxBytes: maxRequestBytes - requestOverhead, maxOps: maxTxnOps, wake: make(chan struct{}, 1)}
}

// run commits batches until ctx ends; then it hands every write still
// waiting back to its caller (errCommitterClosed).
func (c *committer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.closed = true
			left := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, op := range left {
				op.done <- txnResult{err: errCommitterClosed}
			}
			return
		case <-c.wake:
		}
		for ctx.Err() == nil {
			c.mu.Lock()
			gate := c.testGate
			c.mu.Unlock()
			if gate != nil {
				gate()
			}
			batch := c.next()
			if len(batch) == 0 {
				break
			}
			c.commit(ctx, batch)
			c.mu.Lock()
			c.busy = false
			c.mu.Unlock()
		}
	}
}

// take removes the next batch from the queue, in queue order: as many
// writes as fit the server's limits, skipping (leaving queued, in order)
// a write whose module is already in the batch. The first write is
// always taken, so one too large for the server fails as it would alone.
// Pushes go first, in a batch of their own: a member waits for each, and
// every member decodes every event of a commit before it sees its push
// (at a run's start, 16 pushes shared a Txn with 110 enqueues).
func (c *committer) take() []*txnOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.takeLocked()
}

// next is take for run: nil while another batch is being written (its
// writer wakes run again when it is done), and the batch it returns is
// marked busy until run clears it.
func (c *committer) next() []*txnOp {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy {
		return nil
	}
	batch := c.takeLocked()
	c.busy = len(batch) > 0
	return batch
}

func (c *committer) takeLocked() []*txnOp {
	if len(c.queue) == 0 {
		return nil
	}
	pushes := slices.ContainsFunc(c.queue, func(op *txnOp) bool { return op.push })
	var batch, rest []*txnOp
	modules := map[string]bool{}
	size, width := 0, 0
	for i, op := range c.queue {
		if pushes && !op.push {
			rest = append(rest, op)
			continue
		}
		if len(batch) > 0 {
			if modules[op.module] {
				rest = append(rest, op)
				continue
			}
			// The server allows an outer Txn of n nested Txns if n plus
			// the widest nested Txn is within its limit.
			if len(batch)+1+max(width, op.width()) > c.maxOps || size+op.size > c.maxBytes {
				rest = append(rest, c.queue[i:]...)
				break
			}
		}
		batch = append(batch, op)
		modules[op.module] = true
		size += op.size
		width = max(width, op.width())
	}
	c.queue = rest
	return batch
}

// pending is how many writes wait for a batch (tests).
func (c *committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// poke wakes run to look at the queue (a wake already pending will do).
func (c *committer) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// submit queues op and waits for its result. After the session ended
// (or if it ends before op is sent) op is written directly with ctx.
func (c *committer) submit(ctx context.Context, op *txnOp) txnResult {
	if err := ctx.Err(); err != nil {
		return txnResult{err: err}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.single(ctx, op)
	}
	if !c.busy && len(c.queue) == 0 && c.testGate == nil {
		// Nothing to group with: write it from this goroutine rather
		// than wake run for it, which cost a dispatch after an idle gap
		// about 30 µs. Writes submitted meanwhile queue for the next
		// batch, as they would behind run's.
		c.busy = true
		c.mu.Unlock()
		// Yield once first: writes made ready at the same moment (a
		// run's start releases every root module at once) are then
		// queued and share this Txn rather than wait for its fsync;
		// alone, the yield costs well under a microsecond.
		runtime.Gosched()
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			c.txns.Add(1)
			c.writes.Add(1)
			r := c.single(ctx, op)
			c.mu.Lock()
			c.busy = false
			more := len(c.queue) > 0
			c.mu.Unlock()
			if more {
				c.poke()
			}
			return r
		}
		// First in the queue: it was submitted before the others.
		c.busy = false
		c.queue = slices.Insert(c.queue, 0, op)
	} else {
		c.queue = append(c.queue, op)
	}
	c.mu.Unlock()
	c.poke()
	select {
	case r := <-op.done:
		if errors.Is(r.err, errCommitterClosed) {
			return c.single(ctx, op)
		}
		return r
	case <-ctx.Done():
		// Not yet sent: withdraw it. Already in a Txn: it may still be
		// applied, as when a caller's own Txn is cancelled in flight.
		c.mu.Lock()
		withdrawn := false
		for i, q := range c.queue {
			if q == op {
				c.queue = append(c.queue[:i:i], c.queue[i+1:]...)
				withdrawn = true
				break
			}
		}
		c.mu.Unlock()
		if !withdrawn {
			select {
			case r := <-op.done:
				if !errors.Is(r.err, errCommitterClosed) {
					return r // answered as ctx ended: the answer is known
				}
			default:
			}
		}
		return txnResult{err: ctx.Err()}
	}
}

// single writes op as a Txn of its own.
func (c *committer) single(ctx context.Context, op *txnOp) txnResult {
	resp, err := c.cli.Txn(ctx).If(op.cmps...).Then(op.then...).Else(op.els...).Commit()
	if err != nil {
		return txnResult{err: err}
	}
	return txnResult{rev: resp.Header.Revision, succeeded: resp.Succeeded, responses: resp.Responses}
}

// commit writes batch and answers every caller in it.
func (c *committer) commit(ctx context.Context, batch []*txnOp) {
	c.txns.Add(1)
	c.writes.Add(int64(len(batch)))
	if len(batch) == 1 {
		r := c.single(ctx, batch[0])
		if r.err != nil && ctx.Err() != nil {
			r.err = fmt.Errorf("the session ended while this write was in flight, so it may or may not have been applied: %w", r.err)
		}
		batch[0].done <- r
		return
	}
	ops := make([]clientv3.Op, len(batch))
	for i, op := range batch {
		ops[i] = clientv3.OpTxn(op.cmps, op.then, op.els)
	}
	resp, err := c.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrDuplicateKey) {
			// The server's limits are below what this batch assumed
			// (a smaller --max-txn-ops or --max-request-bytes): nothing
			// was applied, so write each on its own.
			for _, op := range batch {
				op.done <- c.single(ctx, op)
			}
			return
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("the session ended while this write was in flight, so it may or may not have been applied: %w", err)
		}
		for _, op := range batch {
			op.done <- txnResult{err: err}
		}
		return
	}
	if len(resp.Responses) != len(batch) {
		err := fmt.Errorf("etcd answered a group commit of %d writes with %d results", len(batch), len(resp.Responses))
		for _, op := range batch {
			op.done <- txnResult{err: err}
		}
		return
	}
	for i, op := range batch {
		tr := resp.Responses[i].GetResponseTxn()
		if tr == nil {
			op.done <- txnResult{err: fmt.Errorf("etcd answered a nested write of a group commit with %T, not a Txn result", resp.Responses[i].Response)}
			continue
		}
		op.done <- txnResult{rev: resp.Header.Revision, succeeded: tr.Succeeded, responses: tr.Responses}
	}
}
