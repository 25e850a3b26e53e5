package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/modpipe/modpipe/coordinator"
	etcdcoord "github.com/modpipe/modpipe/coordinator/etcd"
)

// etcdServer is an etcd process started by the benchmark.
type etcdServer struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan error
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startEtcd starts bin/bench/etcd with its data in dataDir (on disk or on
// tmpfs) and waits until it answers.
func (b *bench) startEtcd(ctx context.Context, dataDir string) (*etcdServer, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	client := fmt.Sprintf("http://127.0.0.1:%d", cp)
	peer := fmt.Sprintf("http://127.0.0.1:%d", pp)
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, err
	}
	cmd := exec.Command(filepath.Join(b.bin, "etcd"), "--name", "bench", "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "bench="+peer, "--log-level", "error",
		// One member, no peers to heartbeat: the election timeout only
		// delays its first election, by 0.1-1.1 s at the default 1 s
		// (a random share of it), several times per run. Leases are
		// unaffected: their TTLs here are far above the minimum.
		"--heartbeat-interval", "10", "--election-timeout", "100")
	logf, err := os.Create(dataDir + ".log")
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	s := &etcdServer{cmd: cmd, endpoint: client, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second) // a guard, not a measurement
	// Dial until it listens first: a gRPC client whose first attempt
	// is refused backs off for a second before it tries again.
	for {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(client, "http://"), time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("etcd at %s did not listen (log: %s.log): %w", client, dataDir, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.stop()
		return nil, err
	}
	defer cli.Close()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(cctx, "health")
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("etcd at %s did not answer (log: %s.log): %w", client, dataDir, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *etcdServer) stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// cluster is a master and its workers on one run, each with its own
// coordinator client as separate instances would have.
type cluster struct {
	coords  []*etcdcoord.Coordinator
	master  coordinator.MasterSession
	workers []coordinator.Session
}

func (b *bench) newCluster(ctx context.Context, endpoint, runID string, workers int) (*cluster, error) {
	cl := &cluster{}
	join := func(i int) (coordinator.Session, error) {
		c, err := etcdcoord.New(ctx, etcdcoord.Config{Endpoints: []string{endpoint}, Prefix: "/bench"})
		if err != nil {
			return nil, err
		}
		cl.coords = append(cl.coords, c)
		req := coordinator.JoinRequest{RunID: runID, Member: coordinator.Member{Index: i, Host: fmt.Sprintf("bench-%d", i), Slots: 1},
			HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 3 * time.Second}
		if i == 0 {
			return c.JoinMaster(ctx, req)
		}
		return c.Join(ctx, req)
	}
	s, err := join(0)
	if err != nil {
		cl.close()
		return nil, fmt.Errorf("join the master: %w", err)
	}
	cl.master = s.(coordinator.MasterSession)
	for i := 1; i <= workers; i++ {
		w, err := join(i)
		if err != nil {
			cl.close()
			return nil, fmt.Errorf("join worker %d: %w", i, err)
		}
		cl.workers = append(cl.workers, w)
	}
	return cl, nil
}

func (cl *cluster) close() {
	for _, w := range cl.workers {
		_ = w.Close()
	}
	if cl.master != nil {
		_ = cl.master.Close()
	}
	for _, c := range cl.coords {
		_ = c.Close()
	}
}

// claimed is one claim as a worker saw it.
type claimed struct {
	module    string
	claimedAt time.Time
	worker    int
}

// runWorkers makes every worker claim and publish at once (a no-op
// module) until ctx ends, reporting each claim on out. hold delays the
// publish (the module's run time). It returns a wait function.
func (cl *cluster) runWorkers(ctx context.Context, out chan<- claimed, publishing chan<- claimed) func() error {
	var wg sync.WaitGroup
	errs := make(chan error, len(cl.workers))
	for i, w := range cl.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := w.Claim(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("worker %d claim: %w", i+1, err)
					}
					return
				}
				at := time.Now()
				if out != nil {
					out <- claimed{module: c.Assignment.Module, claimedAt: at, worker: i + 1}
				}
				if publishing != nil {
					publishing <- claimed{module: c.Assignment.Module, claimedAt: time.Now(), worker: i + 1}
				}
				env := coordinator.Envelope{Module: c.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1,
					StartedAt: at, EndedAt: time.Now(), Instance: i + 1}
				if err := w.Publish(context.WithoutCancel(ctx), c, env); err != nil {
					errs <- fmt.Errorf("worker %d publish %s: %w", i+1, c.Assignment.Module, err)
					return
				}
			}
		}()
	}
	return func() error {
		wg.Wait()
		close(errs)
		return errors.Join(func() []error {
			var out []error
			for e := range errs {
				out = append(out, e)
			}
			return out
		}()...)
	}
}

// thrEnqueuers is how many goroutines enqueue the throughput scenario's
// modules at once.
const thrEnqueuers = 32

// etcdRound is one round's figures on one etcd.
type etcdRound struct {
	chain, sparse, floor []float64 // ms per sample
	// sparseSlots: sparse arrivals to one worker process of 4 slots
	// (sparse: to 4 worker processes of one slot).
	sparseSlots []float64
	// floorIdle: the same Txn, each 20 ms after the last, as sparse
	// arrivals come: what one commit costs after an idle gap.
	floorIdle []float64
	// floorWatch: a raw Txn, 20 ms after the last, -> a bare watcher in
	// another process sees it: the floor of dispatching to a separate
	// worker through etcd (watchfloor.go).
	floorWatch []float64
	throughput float64 // modules/s
}

// etcdOnce runs the dispatch, floor and throughput measurements once.
func (b *bench) etcdOnce(ctx context.Context, endpoint string, round int, chainLen, sparseN, floorN, thrN int, quick bool) (etcdRound, error) {
	var r etcdRound
	// Raw etcd floor: one create-if-absent Txn, what the cheapest possible
	// claim costs.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return r, err
	}
	done := b.timed("etcd floors")
	for i := range floorN {
		k := fmt.Sprintf("/floor/%d/%d", round, i)
		t := time.Now()
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, "x")).Commit()
		if err != nil {
			cli.Close()
			return r, fmt.Errorf("floor txn: %w", err)
		}
		r.floor = append(r.floor, toMS(time.Since(t)))
	}
	for i := range max(floorN/4, 10) {
		time.Sleep(20 * time.Millisecond)
		k := fmt.Sprintf("/floor-idle/%d/%d", round, i)
		t := time.Now()
		_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, "x")).Commit()
		if err != nil {
			cli.Close()
			return r, fmt.Errorf("idle floor txn: %w", err)
		}
		r.floorIdle = append(r.floorIdle, toMS(time.Since(t)))
	}
	if r.floorWatch, err = b.watchFloorRun(ctx, cli, endpoint, round, max(floorN/4, 10)); err != nil {
		cli.Close()
		return r, err
	}
	cli.Close()
	done()

	// Chain: module i+1 is enqueued when the master sees module i's result;
	// dispatch = publish started on a worker -> next claim returned on a
	// worker. As the host's master does, every module after the first is
	// staged (its one dependency is the module before), so the worker that
	// publishes module i dispatches module i+1 in the same Txn; the
	// master's Enqueue of it then finds it dispatched.
	done = b.timed("etcd chain")
	{
		cl, err := b.newCluster(ctx, endpoint, fmt.Sprintf("chain-%d-%d", round, time.Now().UnixNano()), 3)
		if err != nil {
			return r, err
		}
		var stageErr error
		var stageWG sync.WaitGroup
		var stageMu sync.Mutex
		for i := 1; i < chainLen; i++ {
			stageWG.Add(1)
			go func() {
				defer stageWG.Done()
				a := coordinator.Assignment{Module: fmt.Sprintf("c%d", i), Attempt: 1, Dependencies: []string{fmt.Sprintf("c%d", i-1)}}
				if err := cl.master.Stage(ctx, a); err != nil {
					stageMu.Lock()
					stageErr = errors.Join(stageErr, err)
					stageMu.Unlock()
				}
			}()
		}
		stageWG.Wait()
		if stageErr != nil {
			cl.close()
			return r, fmt.Errorf("chain: stage: %w", stageErr)
		}
		wctx, stop := context.WithCancel(ctx)
		claims := make(chan claimed, chainLen)
		pubs := make(chan claimed, chainLen)
		wait := cl.runWorkers(wctx, claims, pubs)
		var lastPub time.Time
		var runErr error
		for i := range chainLen {
			a := coordinator.Assignment{Module: fmt.Sprintf("c%d", i), Attempt: 1}
			if i > 0 {
				a.Dependencies = []string{fmt.Sprintf("c%d", i-1)}
			}
			if err := cl.master.Enqueue(ctx, a); err != nil {
				runErr = err
				break
			}
			c := <-claims
			if i > 0 {
				r.chain = append(r.chain, toMS(c.claimedAt.Sub(lastPub)))
			}
			p := <-pubs
			lastPub = p.claimedAt
			<-cl.master.Results()
		}
		stop()
		werr := wait()
		cl.close()
		if err := errors.Join(runErr, werr); err != nil {
			return r, fmt.Errorf("chain: %w", err)
		}
	}

	// Sparse arrivals: the fleet's shape (4 single-slot worker processes)
	// and the peers' (one consumer of 4 slots), in both orders over the
	// rounds, so neither always follows the other.
	shapes := []struct {
		procs, slots int
		into         *[]float64
	}{{4, 1, &r.sparse}, {1, 4, &r.sparseSlots}}
	if quick {
		shapes = shapes[1:] // the target's shape only: QUICK stays short
	} else if round%2 == 1 {
		shapes[0], shapes[1] = shapes[1], shapes[0]
	}
	done()
	done = b.timed("etcd sparse")
	for _, sh := range shapes {
		if *sh.into, err = b.sparseRun(ctx, endpoint, round, sparseN, sh.procs, sh.slots); err != nil {
			return r, err
		}
	}

	done()
	// Throughput: thrN independent modules enqueued at once, 4 workers;
	// first enqueue -> last result seen by the master.
	done = b.timed("etcd throughput")
	defer done()
	{
		cl, err := b.newCluster(ctx, endpoint, fmt.Sprintf("thr-%d-%d", round, time.Now().UnixNano()), 4)
		if err != nil {
			return r, err
		}
		wctx, stop := context.WithCancel(ctx)
		wait := cl.runWorkers(wctx, nil, nil)
		start := time.Now()
		// Enqueue from many goroutines at once, as the host's master does
		// (one executor goroutine per ready module), so the coordinator's
		// group commit can batch them; a single serial enqueuer would
		// measure one commit per module instead.
		next := make(chan int)
		enqErr := make(chan error, thrEnqueuers)
		var enqWG sync.WaitGroup
		for range thrEnqueuers {
			enqWG.Add(1)
			go func() {
				defer enqWG.Done()
				for i := range next {
					if err := cl.master.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("t%d", i), Attempt: 1}); err != nil {
						enqErr <- err
						return
					}
				}
			}()
		}
		enqWG.Add(1)
		go func() {
			defer enqWG.Done()
			defer close(next)
			for i := range thrN {
				select {
				case next <- i:
				case <-wctx.Done():
					return
				}
			}
		}()
		var runErr error
		for range thrN {
			select {
			case <-cl.master.Results():
				continue
			case runErr = <-enqErr:
			}
			break
		}
		r.throughput = float64(thrN) / time.Since(start).Seconds()
		stop()
		enqWG.Wait()
		close(enqErr)
		for err := range enqErr {
			runErr = errors.Join(runErr, err)
		}
		werr := wait()
		cl.close()
		if err := errors.Join(runErr, werr); err != nil {
			return r, fmt.Errorf("throughput: %w", err)
		}
	}
	return r, nil
}

// etcdScenarios: dispatch latency (chain and sparse arrivals), the raw
// Txn floor and throughput, with etcd's data on disk and on tmpfs,
// alternating the two per round.
func (b *bench) etcdScenarios(ctx context.Context) ([]Row, error) {
	chainLen, sparseN, floorN, thrN := 200, 100, 200, 2000
	rounds := b.rounds
	if b.quick {
		chainLen, sparseN, floorN, thrN, rounds = 60, 25, 100, 300, 1
	}
	media := []struct{ name, dir string }{
		{"disk", filepath.Join(b.work, "etcd-disk")},
		{"tmpfs", filepath.Join("/dev/shm", filepath.Base(b.work)+"-etcd")},
	}
	if b.quick {
		// Under a minute on a busy hour too: QUICK measures on disk,
		// where the dispatch targets are; the tmpfs target is judged on
		// the full run.
		media = media[:1]
	}
	type agg struct{ c50, c99, s50, s99, k50, k99, f50, f99, fi50, fi99, fw50, fw99, thr []float64 }
	res := map[string]*agg{}
	donePeers := b.timed("start asynq and Celery")
	peers, err := b.startPeers(ctx)
	donePeers()
	if err != nil {
		return nil, err
	}
	defer peers.stop()
	peer := map[string]*agg{"asynq": {}, "celery": {}}
	peerRun := map[string]func(context.Context, int, int) (peerResult, error){"asynq": peers.asynq, "celery": peers.celeryRun}
	asynqN := sparseN
	if asynqN > 20 {
		asynqN = 20 // each task waits out asynq's idle poll: 20 samples already take seconds
	}
	if b.quick {
		asynqN = 5
	}
	for _, m := range media {
		res[m.name] = &agg{}
		defer os.RemoveAll(m.dir)
		if filepath.Dir(m.dir) != b.work {
			// Outside the scratch directory (tmpfs): its etcd log too, or
			// every run leaves one behind in /dev/shm.
			defer os.Remove(m.dir + ".log")
		}
	}
	for round := range rounds {
		for _, m := range media {
			doneStart := b.timed("start etcd")
			srv, err := b.startEtcd(ctx, m.dir)
			doneStart()
			if err != nil {
				return nil, err
			}
			r, err := b.etcdOnce(ctx, srv.endpoint, round, chainLen, sparseN, floorN, thrN, b.quick)
			srv.stop()
			if err != nil {
				return nil, fmt.Errorf("etcd on %s: %w", m.name, err)
			}
			a := res[m.name]
			a.c50 = append(a.c50, percentile(r.chain, 50))
			a.c99 = append(a.c99, percentile(r.chain, 99))
			a.s50 = append(a.s50, percentile(r.sparse, 50))
			a.s99 = append(a.s99, percentile(r.sparse, 99))
			a.k50 = append(a.k50, percentile(r.sparseSlots, 50))
			a.k99 = append(a.k99, percentile(r.sparseSlots, 99))
			a.f50 = append(a.f50, percentile(r.floor, 50))
			a.f99 = append(a.f99, percentile(r.floor, 99))
			a.fi50 = append(a.fi50, percentile(r.floorIdle, 50))
			a.fi99 = append(a.fi99, percentile(r.floorIdle, 99))
			a.fw50 = append(a.fw50, percentile(r.floorWatch, 50))
			a.fw99 = append(a.fw99, percentile(r.floorWatch, 99))
			a.thr = append(a.thr, r.throughput)
			b.logger.Debug("round", "scenario", "etcd", "media", m.name, "round", round)
		}
		for _, name := range []string{"asynq", "celery"} {
			n := sparseN
			if name == "asynq" {
				n = asynqN
			}
			done := b.timed(name)
			r, err := peerRun[name](ctx, n, thrN)
			done()
			if err == errSkipped {
				continue
			}
			if err != nil {
				return nil, err
			}
			a := peer[name]
			a.s50 = append(a.s50, percentile(r.LatenciesMS, 50))
			a.s99 = append(a.s99, percentile(r.LatenciesMS, 99))
			a.thr = append(a.thr, r.PerSecond)
		}
	}
	qp := func(pick func(*agg) []float64, higher bool) []Peer {
		return []Peer{{"asynq", newFigure(pick(peer["asynq"]), higher)}, {"celery", newFigure(pick(peer["celery"]), higher)}}
	}
	var rows []Row
	for _, m := range media {
		a := res[m.name]
		floor50 := Peer{"raw etcd Txn (floor)", newFigure(a.f50, false)}
		floor99 := Peer{"raw etcd Txn (floor)", newFigure(a.f99, false)}
		// The targets are judged on the same chain run by host processes
		// (the fleet group); this is the coordinator's share of it.
		c50 := Row{Scenario: fmt.Sprintf("etcd dispatch p50, chain of %d, coordinator API, master+3 workers (%s)", chainLen, m.name), Unit: "ms",
			Modpipe: newFigure(a.c50, false), Peers: []Peer{floor50},
			Note: "coordinator API in one process (publish, which dispatches the staged next module in its Txn -> a waiting worker claims it); the host-process row in the fleet group carries the target"}
		c99 := Row{Scenario: fmt.Sprintf("etcd dispatch p99, chain of %d, coordinator API (%s)", chainLen, m.name), Unit: "ms",
			Modpipe: newFigure(a.c99, false), Peers: []Peer{floor99}}
		const idleName, watchName = "raw etcd Txn 20 ms after the last (idle floor)", "raw Txn -> watch event in another process, 20 ms apart (dispatch floor)"
		idle50, idle99 := Peer{idleName, newFigure(a.fi50, false)}, Peer{idleName, newFigure(a.fi99, false)}
		watch50, watch99 := Peer{watchName, newFigure(a.fw50, false)}, Peer{watchName, newFigure(a.fw99, false)}
		s50 := Row{Scenario: fmt.Sprintf("etcd dispatch p50, sparse arrivals 20 ms apart, 4 worker processes of 1 slot (%s)", m.name), Unit: "ms",
			Modpipe: newFigure(a.s50, false), Peers: append([]Peer{idle50, watch50}, qp(func(a *agg) []float64 { return a.s50 }, false)...),
			Note: "modpipe: enqueue called -> claim returned; asynq, Celery: enqueue -> task started, on Redis, 4 workers; dispatch floor: a bare client's Txn -> a bare watcher in a process of its own sees it. The fleet's shape: every worker process wakes for every event, which on 2 vCPUs the one the module was pushed to waits behind"}
		s99 := Row{Scenario: fmt.Sprintf("etcd dispatch p99, sparse arrivals, 4 worker processes of 1 slot (%s)", m.name), Unit: "ms",
			Modpipe: newFigure(a.s99, false), Peers: append([]Peer{idle99, watch99}, qp(func(a *agg) []float64 { return a.s99 }, false)...)}
		k50 := Row{Scenario: fmt.Sprintf("etcd dispatch p50, sparse arrivals 20 ms apart, 1 worker process of 4 slots (%s)", m.name), Unit: "ms",
			Modpipe: newFigure(a.k50, false), Peers: append([]Peer{idle50, watch50}, qp(func(a *agg) []float64 { return a.s50 }, false)...),
			Note: "as above, to one worker process with 4 slots: the peers' shape (Celery: one consumer process, -c 4; asynq: one server, concurrency 4), so it carries the target"}
		k99 := Row{Scenario: fmt.Sprintf("etcd dispatch p99, sparse arrivals, 1 worker process of 4 slots (%s)", m.name), Unit: "ms",
			Modpipe: newFigure(a.k99, false), Peers: append([]Peer{idle99, watch99}, qp(func(a *agg) []float64 { return a.s99 }, false)...)}
		if m.name == "disk" {
			as, ce := k50.Peers[2].Median, k50.Peers[3].Median
			k50.Target = ">= 50x faster than asynq, >= 1.5x faster than Celery"
			k50.judge(k50.Modpipe.Median*50 <= as && k50.Modpipe.Median*1.5 <= ce, k50.Modpipe.Median, as, ce)
		}
		thr := Row{Scenario: fmt.Sprintf("etcd throughput, %d no-op modules, coordinator API, master + 4 workers (%s)", thrN, m.name), Unit: "modules/s", HigherBetter: true,
			Modpipe: newFigure(a.thr, true),
			Note:    "first enqueue -> last result seen by the master; the workers are claim loops in this process, no plugin call: the coordinator's share, an upper bound of the host's; the target is judged on the host processes (fleet group)"}
		if m.name == "disk" {
			thr.Peers = qp(func(a *agg) []float64 { return a.thr }, true)
		}
		if b.quick {
			rows = append(rows, c50, c99, k50, k99, thr)
		} else {
			rows = append(rows, c50, c99, s50, s99, k50, k99, thr)
		}
	}
	return rows, nil
}

// sparseRun measures sparse arrivals: sparseN independent modules
// enqueued 20 ms apart; dispatch = enqueue called -> claim returned. The
// master is this process; the workers are procs processes of their own
// with slots claim loops each.
func (b *bench) sparseRun(ctx context.Context, endpoint string, round, sparseN, procs, slots int) ([]float64, error) {
	var samples []float64
	runID := fmt.Sprintf("sparse-%dx%d-%d-%d", procs, slots, round, time.Now().UnixNano())
	cl, err := b.newCluster(ctx, endpoint, runID, 0)
	if err != nil {
		return nil, err
	}
	cw, err := b.startClaimWorkers(ctx, endpoint, runID, procs, slots)
	if err != nil {
		cl.close()
		return nil, fmt.Errorf("sparse: %w", err)
	}
	var runErr error
	enq := map[string]time.Time{}
	// The first arrivals warm the new processes up (their first
	// waiters, page faults, the first GC) and are not counted.
	const warmup = 3
	for i := range sparseN + warmup {
		m := fmt.Sprintf("s%d", i)
		enq[m] = time.Now()
		if err := cl.master.Enqueue(ctx, coordinator.Assignment{Module: m, Attempt: 1}); err != nil {
			runErr = err
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range len(enq) {
		if runErr != nil {
			break
		}
		select {
		case c := <-cw.claims:
			if n, _ := strconv.Atoi(strings.TrimPrefix(c.module, "s")); n >= warmup {
				samples = append(samples, toMS(c.claimedAt.Sub(enq[c.module])))
			}
		case runErr = <-cw.errs:
			continue
		}
		<-cl.master.Results()
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := cl.master.Finish(fctx, coordinator.StatusSucceeded); err != nil {
		runErr = errors.Join(runErr, err)
		cw.stop()
	}
	cancel()
	werr := cw.wait()
	cl.close()
	if err := errors.Join(runErr, werr); err != nil {
		return nil, fmt.Errorf("sparse: %w", err)
	}
	return samples, nil
}
