package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// holdFirstBatch makes c wait, before its first batch, until want writes
// are queued, so the test knows they share Txns (ctx, the deadlock guard,
// bounds the wait).
func holdFirstBatch(t *testing.T, ctx context.Context, c *committer, want int) {
	t.Helper()
	var once sync.Once
	c.mu.Lock()
	defer c.mu.Unlock()
	c.testGate = func() {
		once.Do(func() {
			for c.pending() < want {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Millisecond):
				}
			}
		})
	}
}

// TestGroupCommitErrorsPerCaller: many concurrent Enqueues and Publishes,
// some invalid, share Txns; each caller gets exactly its own answer, and
// the master receives each published envelope exactly once.
func TestGroupCommitErrorsPerCaller(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	run := uniqueRunID("group")
	ms, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ws, err := c.Join(ctx, joinReq(run, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	m, w := ms.(*Master), ws.(*Session)

	// Setup, one write at a time: q* queued; h*, p* and k* claimed by the
	// worker (h* and p* are published below, k* stay claimed).
	const n = 12
	for i := range n {
		for _, mod := range []string{fmt.Sprintf("h%d", i), fmt.Sprintf("p%d", i), fmt.Sprintf("k%d", i), fmt.Sprintf("q%d", i)} {
			a := coordinator.Assignment{Module: mod, Attempt: 1, Priority: prioOf(mod)}
			if mod[0] == 'q' {
				// Only queued: a worker's Publish would otherwise claim
				// it ahead (ahead.go).
				a.Requires = []string{"nobody"}
			}
			if err := m.Enqueue(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
	}
	claims := map[string]coordinator.Claim{}
	for range 3 * n {
		cl, err := w.Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims[cl.Assignment.Module] = cl
	}
	for i := range n {
		for _, mod := range []string{fmt.Sprintf("h%d", i), fmt.Sprintf("p%d", i), fmt.Sprintf("k%d", i)} {
			if _, ok := claims[mod]; !ok {
				t.Fatalf("setup: %s was not claimed (claimed %d modules)", mod, len(claims))
			}
		}
	}

	type call struct {
		name string
		do   func() error
		// check judges the error; pairs are judged together below.
		check func(error) string
		pair  string
	}
	wantNil := func(err error) string {
		if err != nil {
			return fmt.Sprintf("want nil, got %v", err)
		}
		return ""
	}
	wantText := func(text string) func(error) string {
		return func(err error) string {
			if err == nil || !strings.Contains(err.Error(), text) {
				return fmt.Sprintf("want an error saying %q, got %v", text, err)
			}
			return ""
		}
	}
	wantNotClaimant := func(err error) string {
		if !errors.Is(err, coordinator.ErrNotClaimant) {
			return fmt.Sprintf("want ErrNotClaimant, got %v", err)
		}
		return ""
	}
	wantTooLarge := func(err error) string {
		var tl *coordinator.ErrTooLarge
		if !errors.As(err, &tl) {
			return fmt.Sprintf("want *ErrTooLarge, got %v", err)
		}
		return ""
	}
	enqueue := func(mod string, attempt int) func() error {
		return func() error { return m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: attempt}) }
	}
	publish := func(mod string, out string) func() error {
		return func() error {
			return w.Publish(ctx, claims[mod], coordinator.Envelope{Module: mod, Status: coordinator.StatusSucceeded, SkipReason: out})
		}
	}
	big := strings.Repeat("x", c.MaxEnvelopeBytes())

	var calls []call
	enqueues, publishes := 0, 0
	for i := range n {
		h, p, q, f, k := fmt.Sprintf("h%d", i), fmt.Sprintf("p%d", i), fmt.Sprintf("q%d", i), fmt.Sprintf("f%d", i), fmt.Sprintf("k%d", i)
		calls = append(calls,
			call{name: "enqueue fresh " + f, do: enqueue(f, 1), check: wantNil},
			call{name: "enqueue queued " + q, do: enqueue(q, 1), check: wantText("already queued")},
			call{name: "enqueue claimed " + k, do: enqueue(k, 2), check: wantText("still claimed")},
			// The same module and attempt twice: exactly one succeeds.
			call{name: "enqueue dup " + f + "/2 a", do: enqueue(f, 2), pair: "enq " + f},
			call{name: "enqueue dup " + f + "/2 b", do: enqueue(f, 2), pair: "enq " + f},
		)
		enqueues += 5
		calls = append(calls,
			call{name: "publish " + h, do: publish(h, "h"), check: wantNil},
			call{name: "publish too large " + p, do: publish(p, big), check: wantTooLarge},
			// The same claim twice: exactly one succeeds, the other is fenced.
			call{name: "publish twice " + p + " a", do: publish(p, "a"), pair: "pub " + p},
			call{name: "publish twice " + p + " b", do: publish(p, "b"), pair: "pub " + p},
		)
		publishes += 3 // the too-large one never reaches the committer
	}
	stale := claims["h0"]
	stale.Token = "1" // a claim token from a revision long gone
	calls = append(calls, call{name: "publish stale token", do: func() error {
		return w.Publish(ctx, stale, coordinator.Envelope{Module: "h0", Status: coordinator.StatusFailed})
	}, check: wantNotClaimant})
	publishes++

	holdFirstBatch(t, ctx, m.enq, enqueues)
	holdFirstBatch(t, ctx, w.pub, publishes)
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, cl := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = cl.do()
		}()
	}
	wg.Wait()

	pairs := map[string][]error{}
	for i, cl := range calls {
		if cl.pair != "" {
			pairs[cl.pair] = append(pairs[cl.pair], errs[i])
			continue
		}
		if msg := cl.check(errs[i]); msg != "" {
			t.Errorf("%s: %s", cl.name, msg)
		}
	}
	for name, es := range pairs {
		var ok, failed int
		for _, err := range es {
			switch {
			case err == nil:
				ok++
			case strings.HasPrefix(name, "enq") && strings.Contains(err.Error(), "already queued"):
				failed++
			case strings.HasPrefix(name, "pub") && errors.Is(err, coordinator.ErrNotClaimant):
				failed++
			default:
				t.Errorf("%s: unexpected error %v", name, err)
			}
		}
		if ok != 1 || failed != 1 {
			t.Errorf("%s: %d succeeded and %d failed as expected, want exactly one of each", name, ok, failed)
		}
	}
	// The Txns were shared: fewer Txns than writes in both committers.
	for name, cm := range map[string]*committer{"enqueue": m.enq, "publish": w.pub} {
		if cm.txns.Load() >= cm.writes.Load() {
			t.Errorf("%s: %d writes took %d Txns; want them grouped", name, cm.writes.Load(), cm.txns.Load())
		}
	}

	// Exactly once: every successful publish arrives once before a last
	// one, published after all of them (by the master, which sees its own
	// enqueue at once and claims the top priority).
	// Pinned: the worker's last Publish registered a waiter for its next
	// Claim (ahead.go), and the master would push to it.
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "last", Attempt: 1, Priority: 100}.PinToMaster()); err != nil {
		t.Fatal(err)
	}
	last, err := m.Claim(ctx)
	if err != nil || last.Assignment.Module != "last" {
		t.Fatalf("claim last: %v %v", last.Assignment.Module, err)
	}
	if err := m.Publish(ctx, last, coordinator.Envelope{Module: "last", Status: coordinator.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for {
		var env coordinator.Envelope
		select {
		case env = <-m.Results():
		case <-ctx.Done():
			t.Fatalf("results: %v (got %v)", ctx.Err(), got)
		}
		if env.Module == "last" {
			break
		}
		got[env.Module]++
	}
	for i := range n {
		for _, mod := range []string{fmt.Sprintf("h%d", i), fmt.Sprintf("p%d", i)} {
			if got[mod] != 1 {
				t.Errorf("%s delivered %d times, want once", mod, got[mod])
			}
			env, err := w.Result(ctx, mod)
			if err != nil {
				t.Errorf("Result(%s): %v", mod, err)
			} else if mod[0] == 'h' && env.SkipReason != "h" {
				t.Errorf("Result(%s) carries %q, want the published envelope", mod, env.SkipReason)
			}
		}
	}
	if len(got) != 2*n {
		t.Errorf("delivered %d modules, want %d: %v", len(got), 2*n, got)
	}
}

// prioOf claims h*, p* and k* before q*, so the worker's setup claims take
// exactly those.
func prioOf(mod string) int {
	if mod[0] == 'q' {
		return 0
	}
	return 1
}

// TestTakeRespectsLimits: a batch stops at the server's op and byte
// limits, defers a second write of a module already in it (keeping queue
// order for what it leaves), and always takes the first write.
func TestTakeRespectsLimits(t *testing.T) {
	op := func(module string, value int) *txnOp {
		return newTxnOp(module,
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision("k/"+module), "=", 0), clientv3.Compare(clientv3.CreateRevision("c/"+module), "=", 0)},
			[]clientv3.Op{clientv3.OpPut("k/"+module, strings.Repeat("v", value))},
			[]clientv3.Op{clientv3.OpGet("c/" + module)})
	}
	modules := func(ops []*txnOp) string {
		var out []string
		for _, o := range ops {
			out = append(out, o.module)
		}
		return strings.Join(out, ",")
	}
	tests := []struct {
		name      string
		maxOps    int
		maxBytes  int
		queue     []*txnOp
		wantBatch string
		wantLeft  string
	}{
		{"all fit", 128, 1 << 20, []*txnOp{op("a", 1), op("b", 1), op("c", 1)}, "a,b,c", ""},
		{"same module deferred in order", 128, 1 << 20, []*txnOp{op("a", 1), op("b", 1), op("a", 2), op("c", 1), op("b", 2)}, "a,b,c", "a,b"},
		// n nested Txns of width 2 need n+2 <= maxOps.
		{"op limit", 5, 1 << 20, []*txnOp{op("a", 1), op("b", 1), op("c", 1), op("d", 1), op("e", 1)}, "a,b,c", "d,e"},
		{"byte limit", 128, 3000, []*txnOp{op("a", 1000), op("b", 1000), op("c", 1000), op("d", 1)}, "a,b", "c,d"},
		{"first always taken", 128, 10, []*txnOp{op("a", 1000), op("b", 1)}, "a", "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &committer{maxOps: tt.maxOps, maxBytes: tt.maxBytes, queue: tt.queue}
			if got := modules(c.take()); got != tt.wantBatch {
				t.Errorf("batch %q, want %q", got, tt.wantBatch)
			}
			if got := modules(c.queue); got != tt.wantLeft {
				t.Errorf("left %q, want %q", got, tt.wantLeft)
			}
		})
	}
}

// TestGroupCommitWithdrawsCancelled: a write whose caller gives up while
// it waits for a batch is never sent, so the caller's error is the whole
// truth (the same enqueue then succeeds).
func TestGroupCommitWithdrawsCancelled(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	ms, err := c.JoinMaster(ctx, joinReq(uniqueRunID("withdraw"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	m := ms.(*Master)
	release := make(chan struct{})
	m.enq.mu.Lock()
	m.enq.testGate = func() {
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	m.enq.mu.Unlock()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Enqueue(cctx, coordinator.Assignment{Module: "x", Attempt: 1}) }()
	for m.enq.pending() < 1 {
		select {
		case <-ctx.Done():
			t.Fatal("the enqueue never reached the committer")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled enqueue: %v, want context.Canceled", err)
	}
	if n := m.enq.pending(); n != 0 {
		t.Fatalf("%d writes still queued after the caller gave up", n)
	}
	close(release)
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "x", Attempt: 1}); err != nil {
		t.Fatalf("enqueue after the cancelled one was withdrawn: %v", err)
	}
}

// Pushes are committed first, in a batch of their own, and the other
// writes keep their order.
func TestTakePushesFirst(t *testing.T) {
	c := newCommitter(nil, 1<<20)
	for _, w := range []struct {
		module string
		push   bool
	}{{"a", false}, {"b", true}, {"c", false}, {"d", true}} {
		op := newTxnOp(w.module, nil, []clientv3.Op{clientv3.OpPut(w.module, "x")}, nil)
		op.push = w.push
		c.queue = append(c.queue, op)
	}
	var got [][]string
	for b := c.take(); len(b) > 0; b = c.take() {
		var mods []string
		for _, op := range b {
			mods = append(mods, op.module)
		}
		got = append(got, mods)
	}
	if fmt.Sprint(got) != "[[b d] [a c]]" {
		t.Fatalf("batches %v, want [[b d] [a c]]", got)
	}
}

// A write submitted while the committer is idle is sent by its caller;
// writes submitted meanwhile wait and go in the batches after it, one
// batch at a time. Every write lands and every caller gets its own
// answer, whichever path it took.
func TestCommitterIdleAndBusy(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	cm := newCommitter(c.cli, 1<<20)
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); cm.run(rctx) }()
	defer func() { stop(); wg.Wait() }()

	prefix := "/modpipe-test/" + uniqueRunID("committer") + "/"
	put := func(key string) *txnOp {
		return newTxnOp(key, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(prefix+key), "=", 0)},
			[]clientv3.Op{clientv3.OpPut(prefix+key, "x")}, nil)
	}
	// Alone: the caller sends it.
	if r := cm.submit(ctx, put("alone")); r.err != nil || !r.succeeded {
		t.Fatalf("idle submit: %+v", r)
	}
	if cm.txns.Load() != 1 || cm.writes.Load() != 1 {
		t.Fatalf("txns %d, writes %d after one write", cm.txns.Load(), cm.writes.Load())
	}
	// Together: 8 goroutines of 25 writes each, and each key once more,
	// which must fail its compare.
	const g, n = 8, 25
	var mu sync.Mutex
	var errs []error
	var cwg sync.WaitGroup
	for i := range g {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for j := range n {
				key := fmt.Sprintf("k%d-%d", i, j)
				for try, want := range []bool{true, false} {
					if r := cm.submit(ctx, put(key)); r.err != nil || r.succeeded != want {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s write %d: err %v, succeeded %v", key, try+1, r.err, r.succeeded))
						mu.Unlock()
					}
				}
			}
		}()
	}
	cwg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != g*n+1 {
		t.Fatalf("%d keys written, want %d", resp.Count, g*n+1)
	}
	if w := cm.writes.Load(); w != 2*g*n+1 {
		t.Fatalf("%d writes counted, want %d", w, 2*g*n+1)
	}
	// run hands each batch's results to their callers and then marks
	// itself idle: the last caller may return a moment before that.
	var (
		queued int
		busy   bool
	)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		cm.mu.Lock()
		queued, busy = len(cm.queue), cm.busy
		cm.mu.Unlock()
		if queued == 0 && !busy || time.Now().After(deadline) {
			break
		}
	}
	if queued != 0 || busy {
		t.Fatalf("committer left with %d queued, busy %v", queued, busy)
	}
	t.Logf("%d writes in %d Txns", cm.writes.Load(), cm.txns.Load())
}
