package etcd

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

var benchRuns atomic.Int64

// uniqueRunID names a run for one test or benchmark invocation, so runs
// of the same test in one process (go test -count=N) do not meet in the
// shared etcd.
func uniqueRunID(name string) string {
	return fmt.Sprintf("bench-%s-%d-%d", name, time.Now().UnixNano(), benchRuns.Add(1))
}

// BenchmarkEnqueueClaimPublish measures throughput of the whole work path
// with the master and 3 workers (2 claimers each) claiming and publishing;
// one op is one assignment. "trickle": the master enqueues while they
// claim (every enqueue wakes every idle claimer); "backlog": b.N
// assignments are queued before the claimers start (claimers spread over
// the ready keys). conflicts/assignment counts claim Txns lost to another
// claimer.
func BenchmarkEnqueueClaimPublish(b *testing.B) {
	for _, mode := range []string{"trickle", "backlog"} {
		b.Run(mode, func(b *testing.B) { benchEnqueueClaimPublish(b, mode == "backlog") })
	}
}

func benchEnqueueClaimPublish(b *testing.B, backlog bool) {
	ctx := context.Background()
	c := newTestCoordinator(b)
	run := uniqueRunID("ecp")
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	members := []coordinator.Session{m}
	for i := 1; i <= 3; i++ {
		w, err := c.Join(ctx, joinReq(run, i))
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		members = append(members, w)
	}
	enqueueAll := func() {
		for i := range b.N {
			if err := m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("m%d", i), Attempt: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	}
	if backlog {
		enqueueAll()
	}
	b.ResetTimer()
	c.conflicts.Store(0)
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, s := range members {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					cl, err := s.Claim(wctx)
					if err != nil {
						return
					}
					if err := s.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	if !backlog {
		wg.Add(1)
		go func() { defer wg.Done(); enqueueAll() }()
	}
	for range b.N {
		<-m.Results()
	}
	b.StopTimer()
	stop()
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "assignments/s")
	b.ReportMetric(float64(c.conflicts.Load())/float64(b.N), "conflicts/assignment")
}

// BenchmarkClaimAfterDeletes shows that claiming does not slow down as
// deleted queue keys pile up (they stay in etcd's index until compaction):
// "claim" is Enqueue+Claim through the local view; "prefix-get" is the
// single prefix read a rescanning claimer would do per claim, for contrast.
func BenchmarkClaimAfterDeletes(b *testing.B) {
	for _, deleted := range []int{0, 20000} {
		ctx := context.Background()
		c := newTestCoordinator(b)
		run := uniqueRunID(fmt.Sprintf("del%d", deleted))
		m, err := c.JoinMaster(ctx, joinReq(run, 0))
		if err != nil {
			b.Fatal(err)
		}
		qprefix := c.runPrefix(run) + "queue/"
		// Fill the queue prefix with deleted keys: puts in batches of 100
		// (under etcd's 128 ops per Txn), then one range delete.
		for i := 0; i < deleted; i += 100 {
			var ops []clientv3.Op
			for j := i; j < min(i+100, deleted); j++ {
				ops = append(ops, clientv3.OpPut(fmt.Sprintf("%sdead-%06d/1", qprefix, j), "x"))
			}
			if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := c.cli.Delete(ctx, qprefix+"dead-", clientv3.WithPrefix()); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("deleted=%d/claim", deleted), func(b *testing.B) {
			for i := range b.N {
				if err := m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("b%d-%d", i, time.Now().UnixNano()), Attempt: 1}); err != nil {
					b.Fatal(err)
				}
				if _, err := m.Claim(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("deleted=%d/prefix-get", deleted), func(b *testing.B) {
			for range b.N {
				if _, err := c.cli.Get(ctx, qprefix, clientv3.WithPrefix(), clientv3.WithLimit(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
		_ = m.Close()
	}
}

// BenchmarkTxn is the raw latency of one claim-shaped Txn (compare a
// revision, delete one key, put another) on the embedded server: the floor
// under every claim and publish.
func BenchmarkTxn(b *testing.B) {
	ctx := context.Background()
	c := newTestCoordinator(b)
	key := "/modpipe-test/bench-txn/" + uniqueRunID("txn")
	resp, err := c.cli.Put(ctx, key, "0")
	if err != nil {
		b.Fatal(err)
	}
	rev := resp.Header.Revision
	b.ResetTimer()
	for i := range b.N {
		t, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, fmt.Sprint(i)), clientv3.OpDelete(key+"/other")).
			Commit()
		if err != nil || !t.Succeeded {
			b.Fatalf("txn: %v, succeeded %v", err, t != nil && t.Succeeded)
		}
		rev = t.Header.Revision
	}
}

// fleet is a master and workers on one run, each member with its own
// Coordinator (its own etcd client and connection) as separate instances
// of a real fleet would have, each member with one claimer.
type fleet struct {
	master  *Master
	members []coordinator.Session // master first
	coords  []*Coordinator
}

func newFleet(b *testing.B, workers int) *fleet {
	ctx := context.Background()
	run := uniqueRunID("fleet")
	f := &fleet{}
	for i := 0; i <= workers; i++ {
		c := newTestCoordinator(b)
		f.coords = append(f.coords, c)
		req := joinReq(run, i)
		req.Member.Slots = 1
		if i == 0 {
			m, err := c.JoinMaster(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			f.master = m.(*Master)
			f.members = append(f.members, m)
			continue
		}
		w, err := c.Join(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		f.members = append(f.members, w)
	}
	b.Cleanup(func() {
		for i := len(f.members) - 1; i >= 0; i-- {
			_ = f.members[i].Close()
		}
	})
	return f
}

func (f *fleet) conflicts() int64 {
	var n int64
	for _, c := range f.coords {
		n += c.conflicts.Load()
	}
	return n
}

// runClaimers starts one claim-and-publish loop on each worker (not the
// master); claimed, if set, gets each claim as it returns and publishing
// the time a publish starts. It returns a stop function that waits.
func (f *fleet) runClaimers(b *testing.B, claimed chan<- time.Time, publishing chan<- time.Time) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range f.members[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cl, err := s.Claim(ctx)
				if err != nil {
					return
				}
				if claimed != nil {
					claimed <- time.Now()
				}
				if publishing != nil {
					publishing <- time.Now()
				}
				if err := s.Publish(context.WithoutCancel(ctx), cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// BenchmarkDispatchChain is one step of a chain over a master and 3
// workers: a worker publishes, the master sees the result and enqueues
// the dependent, another worker's Claim returns. It reports the p50 and
// p99 of publish start -> next claim returned, the latency the issue's
// dispatch target is about.
func BenchmarkDispatchChain(b *testing.B) {
	ctx := context.Background()
	f := newFleet(b, 3)
	claims := make(chan time.Time, 1)
	pubs := make(chan time.Time, 1)
	stop := f.runClaimers(b, claims, pubs)
	defer stop()
	lat := make([]time.Duration, 0, b.N)
	var lastPub time.Time
	b.ResetTimer()
	for i := range b.N + 1 {
		if err := f.master.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("c%d", i), Attempt: 1}); err != nil {
			b.Fatal(err)
		}
		c := <-claims
		if i > 0 {
			lat = append(lat, c.Sub(lastPub))
		}
		lastPub = <-pubs
		<-f.master.Results()
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(f.conflicts())/float64(b.N), "conflicts/op")
	b.ReportMetric(float64(f.coords[0].pushes.Load())/float64(b.N), "pushes/op")
}

// BenchmarkThroughput is the throughput scenario: b.N independent
// no-op assignments over a master and 4 workers with one claimer each,
// from the first enqueue to the master having seen every result.
// "serial" enqueues from one goroutine; "concurrent" from 16, as the
// engine's scheduler does when many modules become ready at once.
func BenchmarkThroughput(b *testing.B) {
	for _, enqueuers := range []int{1, 16} {
		name := "serial"
		if enqueuers > 1 {
			name = "concurrent"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			f := newFleet(b, 4)
			stop := f.runClaimers(b, nil, nil)
			defer stop()
			b.ResetTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range enqueuers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := f.master.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("t%d", i), Attempt: 1}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			for range b.N {
				<-f.master.Results()
			}
			b.StopTimer()
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "modules/s")
			b.ReportMetric(float64(f.conflicts())/float64(b.N), "conflicts/op")
			var aheads int64
			for _, c := range f.coords {
				aheads += c.aheads.Load()
			}
			b.ReportMetric(float64(aheads)/float64(b.N), "aheads/op")
			if txns := f.master.enq.txns.Load(); txns > 0 {
				b.ReportMetric(float64(f.master.enq.writes.Load())/float64(txns), "enqueues/txn")
			}
		})
	}
}
