// Package etcd is the Coordinator for fleets: every instance of a run talks
// to one etcd cluster (go.etcd.io/etcd/client/v3).
//
// Key space, all under PREFIX/RUN_ID/:
//
//	runlease         id of the run lease (RunTTL) that every non-member key lives on
//	members/NNNNN    member record, on the member's session lease; NNNNN=00000 is the master
//	run              run record (RunInfo)
//	queue/MOD/ATT    queued assignment (MOD path-escaped, ATT the attempt)
//	claims/MOD       claim, on the claimer's session lease
//	waiters/NNNNN/LEASE-SEQ  a waiting Claim call, on its session lease (push.go)
//	results/MOD      published envelope
//	cancel           cancellation reason
//	end              final status written by Finish
//
// Liveness: each session holds a lease whose TTL is the heartbeat timeout,
// renewed every heartbeat interval; a session that cannot renew before its
// local deadline, one interval before etcd can expire the lease, ends
// itself (ErrSessionLost). Because claims live on the
// claimer's lease, a dead member's claims vanish with it; the master sees
// the deletes (without a result put in the same revision) as lost claims.
//
// Every session keeps a local view of the run, fed by one watch on the run
// prefix (WithRequireLeader, re-read and re-watched after compaction), so
// claiming never rescans the queue prefix: its cost does not grow with the
// number of queue keys deleted before it. A claim is one Txn comparing the
// queue key's mod revision and creating claims/MOD on the claimer's lease
// while deleting the queue key. Each new ready key is designated to one
// member with a free slot (every member computes the same choice from the
// same watch events), so idle members do not all race for it; other
// members take it only after a short grace. Keys nobody has a slot for are
// open: claimers start at their head and, once they see contention, spread
// over the first ready keys of the top priority by member index.
//
// A Claim call that finds nothing registers a waiter, and the master's
// Enqueue turns into a claim for it in the same Txn (push.go): two
// commits per dispatch step. Publish claims the slot's next item ahead in
// its own Txn (ahead.go): one commit per module for a busy worker, and
// fewer for short modules, whose Publishes claim several ahead and share
// Txns.
//
// Group commit (batch.go): a session's concurrent Enqueues, and separately
// its concurrent Publishes, share one Txn of nested Txns, one per caller,
// each with its own compares and result, so every caller gets exactly the
// answer its own Txn would have given while they share one raft proposal.
// A batch is whatever waits when the previous Txn returns (no timers), so
// a lone caller is written at once and its sequential writes keep their
// order.
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/internal/mailbox"
)

// Coordinator is the etcd coordinator. Create it with New; it is safe for
// concurrent use and may serve many runs and sessions.
type Coordinator struct {
	cfg Config
	cli *clientv3.Client
	log hclog.Logger

	mu        sync.Mutex
	closed    bool
	runLeases map[string]clientv3.LeaseID
	sessions  map[*Session]struct{}

	// conflicts counts claim Txns lost to another claimer, pushes the
	// enqueues pushed straight to a waiting claimer (tests, benchmarks).
	conflicts, pushes atomic.Int64
	// aheads counts claims taken ahead by Publish, fires staged modules
	// dispatched by Publish, prefetches claims taken while every slot was
	// busy (tests, benchmarks).
	aheads, fires, prefetches atomic.Int64

	// grace is how long an item designated to another member is left to
	// it (DefaultDesignationGrace; tests change it).
	grace time.Duration
	// prefetchAfter is how long a member's slots must all be busy before
	// it prefetches (prefetch.go; tests that must not see a prefetch
	// under load lengthen it).
	prefetchAfter time.Duration
	// shortRun is the average run time under which a session's modules
	// count as short and its Publishes claim deeper ahead (ahead.go;
	// tests about claiming one ahead set it to zero).
	shortRun time.Duration

	// testWatchContext, when set by a test, runs before each watch starts
	// and may block or return a context it cancels to cut the watch.
	testWatchContext func(*Session, context.Context) context.Context
	// testPushed, when set by a test, runs when a Claim call finds the
	// claim pushed to it, before it checks its ctx and returns it.
	testPushed func(*Session, context.Context)
	// testPrefetching, when set by a test, runs before a prefetch's claim
	// Txn is sent (the item is chosen).
	testPrefetching func(*Session)
	// testClaimAnswerLost, when set by a test, is asked after each claim
	// Txn that etcd answered; true drops the answer, as a connection lost
	// after the request was applied would.
	testClaimAnswerLost func() bool
}

var _ coordinator.Coordinator = (*Coordinator)(nil)

// diagnoseEndpoints says why endpoints did not answer, when a plain dial
// tells (the client's own error is only its deadline): "; 127.0.0.1:2379:
// connection refused", or that each port answers but not as etcd.
func diagnoseEndpoints(ctx context.Context, endpoints []string) string {
	var causes []string
	for _, e := range endpoints {
		network, addr := "tcp", e
		if scheme, rest, ok := strings.Cut(e, "://"); ok {
			addr = strings.TrimSuffix(rest, "/")
			if scheme == "unix" || scheme == "unixs" {
				network = "unix"
			}
		}
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			var oe *net.OpError
			if errors.As(err, &oe) && oe.Err != nil {
				err = oe.Err
			}
			causes = append(causes, fmt.Sprintf("%s: %v", e, err))
			continue
		}
		_ = conn.Close()
		causes = append(causes, fmt.Sprintf("%s: the port accepts connections but did not answer as etcd in time (TLS or credentials that do not match the server's, or a server too busy to answer?)", e))
	}
	return "; " + strings.Join(causes, "; ")
}

// etcdStreamWindow and etcdConnWindow are the client's HTTP/2 windows
// (see New): room for a full re-read of a large run in a few updates.
const (
	etcdStreamWindow = 4 << 20
	etcdConnWindow   = 16 << 20
)

// New connects to etcd and checks that it answers within cfg.DialTimeout.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLS:         tlsCfg,
		Context:     context.WithoutCancel(ctx),
		// Room for the largest request the server accepts plus framing.
		MaxCallSendMsgSize: cfg.MaxRequestBytes + 64*1024,
		Logger:             zap.NewNop(),
		// Fixed flow-control windows turn off gRPC's bandwidth
		// estimator, which answers nearly every watch event and Txn
		// response with a window update and a PING etcd must answer:
		// a write, a read and a wake-up more on both sides per message.
		DialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(etcdStreamWindow),
			grpc.WithInitialConnWindowSize(etcdConnWindow),
		},
	})
	if err != nil {
		// With credentials the client authenticates as it connects, so
		// an endpoint that does not answer fails here, not at the Get.
		return nil, connectError(ctx, cfg, err)
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := cli.Get(pctx, cfg.Prefix+"/", clientv3.WithCountOnly()); err != nil {
		_ = cli.Close()
		return nil, connectError(ctx, cfg, err)
	}
	return &Coordinator{
		cfg: cfg, cli: cli, log: cfg.Logger,
		runLeases:     map[string]clientv3.LeaseID{},
		sessions:      map[*Session]struct{}{},
		grace:         DefaultDesignationGrace,
		prefetchAfter: prefetchAfter,
		shortRun:      shortRun,
	}, nil
}

// connectError says why New could not use etcd, and what to check.
func connectError(ctx context.Context, cfg Config, err error) error {
	eps := strings.Join(cfg.Endpoints, ",")
	switch {
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("connect to etcd at %s: %w: the server has authentication enabled; give a username and password (distributed { etcd { username, password } })", eps, err)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("connect to etcd at %s: %w: user %q may not read the prefix %s; grant its role readwrite on %s/ or use a prefix it may write (distributed { etcd { prefix } })", eps, err, cfg.Username, cfg.Prefix, cfg.Prefix)
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("connect to etcd at %s: %w", eps, err)
	}
	return fmt.Errorf("connect to etcd at %s: %w%s; check that etcd is running there and the endpoints (--etcd, %s), TLS files and credentials are right",
		eps, err, diagnoseEndpoints(ctx, cfg.Endpoints), EndpointsEnv)
}

// MaxEnvelopeBytes is the largest envelope Publish accepts.
func (c *Coordinator) MaxEnvelopeBytes() int { return c.cfg.maxEnvelopeBytes() }

// Close ends every open session (their claims are released), waits for
// the goroutines of every session not yet closed, and closes the etcd
// client.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var open []*Session
	for s := range c.sessions {
		open = append(open, s)
	}
	c.mu.Unlock()
	for _, s := range open {
		s.end(errors.New("etcd coordinator closed"), true)
		s.wg.Wait()
	}
	if err := c.cli.Close(); err != nil {
		return fmt.Errorf("close etcd client: %w", err)
	}
	return nil
}

func (c *Coordinator) runPrefix(runID string) string { return c.cfg.Prefix + "/" + runID + "/" }

func escape(module string) string { return url.PathEscape(module) }

// queueKey is the key of attempt of module queued in the run of prefix.
func queueKey(prefix, module string, attempt int) string {
	return prefix + "queue/" + escape(module) + "/" + strconv.Itoa(attempt)
}

func memberKey(p string, index int) string { return fmt.Sprintf("%smembers/%05d", p, index) }

// runLease returns the lease the run's keys live on, creating it (and the
// runlease key recording it) on first use. Concurrent first joiners agree
// through a create-if-absent Txn; the losers revoke their own lease.
func (c *Coordinator) runLease(ctx context.Context, runID string) (clientv3.LeaseID, error) {
	c.mu.Lock()
	id, ok := c.runLeases[runID]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	key := c.runPrefix(runID) + "runlease"
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("read the run lease of %s: %w", runID, err)
	}
	if len(resp.Kvs) == 0 {
		g, err := c.cli.Grant(ctx, int64(c.cfg.RunTTL/time.Second))
		if err != nil {
			return 0, fmt.Errorf("create the run lease of %s: %w", runID, err)
		}
		txn, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, strconv.FormatInt(int64(g.ID), 10), clientv3.WithLease(g.ID))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return 0, fmt.Errorf("record the run lease of %s: %w", runID, err)
		}
		if txn.Succeeded {
			id = g.ID
		} else {
			_, _ = c.cli.Revoke(ctx, g.ID)
			resp = (*clientv3.GetResponse)(txn.Responses[0].GetResponseRange())
		}
	}
	if id == 0 {
		if len(resp.Kvs) == 0 {
			return 0, fmt.Errorf("run lease of %s vanished while joining; try again", runID)
		}
		v, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("run lease key %s holds %q, not a lease id: %w", key, resp.Kvs[0].Value, err)
		}
		id = clientv3.LeaseID(v)
	}
	c.mu.Lock()
	c.runLeases[runID] = id
	c.mu.Unlock()
	return id, nil
}

// JoinMaster implements coordinator.Coordinator.
func (c *Coordinator) JoinMaster(ctx context.Context, req coordinator.JoinRequest) (coordinator.MasterSession, error) {
	req, err := req.Normalize(true)
	if err != nil {
		return nil, err
	}
	s, err := c.join(ctx, req, true)
	if err != nil {
		return nil, err
	}
	return &Master{Session: s}, nil
}

// Join implements coordinator.Coordinator.
func (c *Coordinator) Join(ctx context.Context, req coordinator.JoinRequest) (coordinator.Session, error) {
	req, err := req.Normalize(false)
	if err != nil {
		return nil, err
	}
	return c.join(ctx, req, false)
}

func (c *Coordinator) join(ctx context.Context, req coordinator.JoinRequest, master bool) (*Session, error) {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("join run %s: etcd coordinator closed", req.RunID)
	}
	runLease, err := c.runLease(ctx, req.RunID)
	if err != nil {
		return nil, fmt.Errorf("join run %s: %w", req.RunID, err)
	}
	ttl := int64((req.HeartbeatTimeout + time.Second - 1) / time.Second)
	// The lease's countdown starts when etcd grants it, after this.
	granted := time.Now()
	g, err := c.cli.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("join run %s: create the session lease: %w", req.RunID, err)
	}
	lease := g.ID
	p := c.runPrefix(req.RunID)
	member := req.Member
	member.JoinedAt = time.Now().UTC()
	data, err := json.Marshal(member)
	if err != nil {
		_, _ = c.cli.Revoke(ctx, lease)
		return nil, fmt.Errorf("join run %s: encode member: %w", req.RunID, err)
	}
	mkey, endKey := memberKey(p, member.Index), p+"end"
	txn, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(mkey), "=", 0), clientv3.Compare(clientv3.CreateRevision(endKey), "=", 0)).
		Then(clientv3.OpPut(mkey, string(data), clientv3.WithLease(lease))).
		Else(clientv3.OpGet(mkey), clientv3.OpGet(endKey)).Commit()
	if err != nil {
		_, _ = c.cli.Revoke(context.WithoutCancel(ctx), lease)
		return nil, fmt.Errorf("join run %s as instance %d: %w", req.RunID, member.Index, err)
	}
	if !txn.Succeeded {
		_, _ = c.cli.Revoke(ctx, lease)
		if kvs := txn.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			return nil, fmt.Errorf("join run %s: %w", req.RunID, &coordinator.RunFinishedError{Status: coordinator.Status(kvs[0].Value)})
		}
		holder := "unknown"
		if kvs := txn.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			var m coordinator.Member
			if json.Unmarshal(kvs[0].Value, &m) == nil {
				holder = m.Host
			}
		}
		return nil, coordinator.DuplicateIndexError(req.RunID, member.Index, holder)
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Session{
		c: c, runID: req.RunID, prefix: p, member: member, lease: lease, runLease: runLease, master: master,
		ttl: time.Duration(ttl) * time.Second, interval: req.HeartbeatInterval,
		log:  c.log.With("run_id", req.RunID, "index", member.Index),
		done: make(chan struct{}), ctx: sctx, cancel: cancel,
		infoReady: make(chan struct{}), cancelled: make(chan struct{}), changed: make(chan struct{}),
		inflight: map[string]bool{}, taken: map[string]int64{},
		watchers: map[*mailbox.Mailbox[coordinator.MemberEvent]]struct{}{},
		view:     newView(),
		results:  mailbox.New[coordinator.Envelope](), lost: mailbox.New[coordinator.LostClaim](),
		delivered: map[string]int64{}, stopHeartbeat: make(chan struct{}),
		owned: map[string]bool{}, pushed: map[string]coordinator.Claim{}, advanced: make(chan struct{}),
		unsure:  map[string]coordinator.Assignment{},
		running: map[string]time.Time{}, pubPending: map[string]int64{},
		enqueuedMods: map[string]bool{}, stageTried: map[string]bool{}, staging: map[string]chan struct{}{}, firedSeen: map[string]bool{},
		pub: newCommitter(c.cli, c.cfg.MaxRequestBytes),
	}
	if master {
		s.enq = newCommitter(c.cli, c.cfg.MaxRequestBytes)
	}
	// The first snapshot is read after our member key exists, so it
	// includes us, and the watch continues exactly from it.
	snap, err := c.cli.Get(ctx, p, clientv3.WithPrefix())
	if err != nil {
		cancel()
		_, _ = c.cli.Revoke(context.WithoutCancel(ctx), lease)
		return nil, fmt.Errorf("join run %s: read the run: %w", req.RunID, err)
	}
	s.mu.Lock()
	toEnd := s.applySnapshotLocked(snap)
	if _, ok := s.view.members[0]; toEnd == nil && !master && s.view.info != nil && !ok {
		// The master joins before it publishes the run record and keeps
		// its member key until it finishes (which writes end): a record
		// without either is the run of a master that died, and since no
		// master can publish it again the run can never go on.
		toEnd = fmt.Errorf("the run's master is gone (the run was started but has no master and did not finish): %w", coordinator.ErrMasterLost)
	}
	s.viewRev = snap.Header.Revision
	s.mu.Unlock()
	c.mu.Lock()
	c.sessions[s] = struct{}{}
	c.mu.Unlock()
	s.wg.Add(3)
	go s.heartbeat(granted)
	go s.watch(snap.Header.Revision)
	go func() { defer s.wg.Done(); s.pub.run(s.ctx) }()
	if master {
		s.wg.Add(3)
		go func() { defer s.wg.Done(); s.enq.run(s.ctx) }()
		go func() { defer s.wg.Done(); s.results.Run(s.ctx) }()
		go func() { defer s.wg.Done(); s.lost.Run(s.ctx) }()
	}
	if toEnd != nil {
		s.end(toEnd, true)
	}
	s.log.Info("member joined", "host", member.Host, "capabilities", member.Capabilities, "slots", member.Slots, "lease", fmt.Sprintf("%x", int64(lease)))
	return s, nil
}

// Session is a member's session on etcd.
type Session struct {
	c        *Coordinator
	runID    string
	prefix   string
	member   coordinator.Member
	lease    clientv3.LeaseID
	runLease clientv3.LeaseID
	master   bool
	ttl      time.Duration
	interval time.Duration
	log      hclog.Logger

	// ctx is cancelled when the session ends and bounds every goroutine
	// of the session; wg waits for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	mu        sync.Mutex
	err       error
	view      *view
	infoReady chan struct{}
	cancelled chan struct{}
	// changed is closed and replaced when the queue gains an item.
	changed chan struct{}
	// inflight: queue keys this session is trying right now, so its own
	// concurrent claimers do not race each other.
	inflight map[string]bool
	// taken: queue keys (at a mod revision) someone else claimed first; the
	// watch will delete them soon, until then they are skipped.
	taken map[string]int64
	// contention > 0 makes claimers spread over the first ready keys.
	contention int
	// viewRev is the revision the view reflects; wroteRev the latest
	// revision of this session's own Enqueue. Claim waits for the view to
	// reach wroteRev, so a session always sees its own enqueues.
	viewRev, wroteRev int64
	watchers          map[*mailbox.Mailbox[coordinator.MemberEvent]]struct{}

	// Master only: its Enqueues in flight or not yet in the view, so a
	// push never overtakes work the view does not show yet (push.go).
	ownEnqueues []*ownEnqueue
	// Master only (staged.go): modules Enqueue was called for, modules
	// Stage was called for, and the Stage calls in flight, which an
	// Enqueue of the same module waits for.
	enqueuedMods, stageTried map[string]bool
	staging                  map[string]chan struct{}
	// firedSeen: staged modules the view shows dispatched (staged.go).
	firedSeen map[string]bool

	// Master only: results by mod revision already delivered, so a
	// re-read after compaction does not deliver them twice.
	results   *mailbox.Mailbox[coordinator.Envelope]
	lost      *mailbox.Mailbox[coordinator.LostClaim]
	delivered map[string]int64

	// pub group-commits this session's concurrent Publishes; enq (master
	// only) its concurrent Enqueues. See batch.go.
	pub, enq *committer

	// Pushed assignments (push.go). waitSeq numbers this session's
	// waiters; owned are the waiters of Claim calls in progress; pushed
	// holds the claims pushed to them and not yet returned, by waiter key;
	// inbox holds pushed claims no call owns any more, which the next
	// Claim takes first; closing stops new waiters once Close began.
	waitSeq int64
	owned   map[string]bool
	pushed  map[string]coordinator.Claim
	inbox   []coordinator.Claim
	closing bool
	// unsure: modules whose claim Txn of ours failed without an answer,
	// so it may have been applied (ahead.go).
	unsure map[string]coordinator.Assignment
	// ahead: claims Publish took for the next Claim call; spare: waiters
	// Publish registered for it (ahead.go).
	ahead []*heldClaim
	// aheadInFlight counts claims planned ahead whose Publish Txn has
	// not answered; runAvg is how long this session's modules run, a
	// moving average from Claim's return to their Publish (ahead.go).
	aheadInFlight int
	runAvg        time.Duration
	spare         []*waiter
	// early: waiters registered by WaitRun, whose grace starts only when
	// it returns (ahead.go).
	early     []*waiter
	earlyDone bool
	// running: modules of the claims Claim returned and Publish has not
	// answered; pubSeq numbers Publishes as they begin or are announced
	// (Publishing), pubPending holds those not returned yet, by module;
	// prefetchArmed, yieldArmed: a prefetch or a yield is due
	// (prefetch.go).
	running                   map[string]time.Time // by module: when Claim returned it
	pubSeq                    int64
	pubPending                map[string]int64
	prefetchArmed, yieldArmed bool
	// prefetching: a prefetch's claim Txn is in flight. Claim calls wait
	// for it: it took the item they would take, and picking past it
	// would return a later item first (FIFO within a priority).
	prefetching bool
	// advanced is closed and replaced whenever viewRev moves.
	advanced chan struct{}

	stopHeartbeat chan struct{} // tests: stop renewing without ending
	resyncs       atomic.Int64  // re-reads after compaction, for tests
}

var _ coordinator.Session = (*Session)(nil)

// revokeTimeout bounds the revocation of a session's lease as it ends.
const revokeTimeout = time.Second

// end ends the session once with err. With revoke, the session lease is
// revoked so the member key and claims disappear at once instead of at
// lease expiry.
func (s *Session) end(err error, revoke bool) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	close(s.done)
	s.cancel()
	s.mu.Unlock()
	s.log.Info("session ended", "reason", err)
	if revoke {
		// Short: a reachable etcd answers in milliseconds, and an
		// unreachable one (often why the session ends) would hold the
		// exit for the whole dial timeout; the lease expires by itself.
		ctx, cancel := context.WithTimeout(context.Background(), min(s.c.cfg.DialTimeout, revokeTimeout))
		defer cancel()
		if _, rerr := s.c.cli.Revoke(ctx, s.lease); rerr != nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
			s.log.Warn("could not release the session lease; it will expire by itself", "error", rerr)
		}
	}
}

// refusesWrites ends the session when err says etcd refuses every write
// (its space quota is full: the NOSPACE alarm), and reports whether it
// did. Nothing this session does can succeed until an operator frees the
// space, and a publish that is only logged would leave the master waiting
// for a result that never comes: the run ends as a coordinator failure,
// which every instance reports, instead of hanging.
func (s *Session) refusesWrites(err error) bool {
	if err == nil || !(errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace) ||
		strings.Contains(err.Error(), rpctypes.ErrNoSpace.Error())) {
		return false
	}
	// Revoked: etcd still allows that, and the master learns at once
	// that this member's claims are gone.
	s.end(fmt.Errorf("%w: etcd refuses writes (%v): its space quota is full; compact and defragment it and disarm the NOSPACE alarm, or raise --quota-backend-bytes (see \"Keeping etcd healthy\" in docs/fleet.md)", ErrEtcdFull, err), true)
	return true
}

// ErrEtcdFull ends a session whose etcd refuses writes because its space
// quota is full.
var ErrEtcdFull = errors.New("etcd is out of space")

// heartbeat ends the session with ErrSessionLost at its local deadline,
// which keepalive pushes back with every renewal etcd acknowledges.
//
// The deadline must pass strictly before etcd can expire the lease, so
// that the member stops its modules before the master hands their claims
// (and their not_in_parallel keys) to someone else. etcd restarts a
// lease's countdown when it processes a renewal, which is after the
// renewal was sent, so the send time of the last acknowledged renewal
// (for the grant, the time before it was asked for) plus the TTL is the
// earliest moment the server can expire it. The deadline is one heartbeat
// interval before that: the margin covers the cancellation of the
// member's modules once the session ends. keepalive runs in its own
// goroutine so that a renewal blocked on a partitioned network cannot
// delay the deadline.
func (s *Session) heartbeat(granted time.Time) {
	defer s.wg.Done()
	acks := make(chan renewal)
	s.wg.Add(1)
	go s.keepalive(acks)
	deadline := time.NewTimer(time.Until(s.localDeadline(renewal{sent: granted, ttl: s.ttl})))
	defer deadline.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-deadline.C:
			s.end(coordinator.ErrSessionLost, false)
			return
		case r := <-acks:
			// Renewals are sent one at a time, so acks arrive in send
			// order and each moves the deadline later.
			deadline.Reset(time.Until(s.localDeadline(r)))
		}
	}
}

// renewal is a lease grant or renewal etcd acknowledged: when it was sent
// and the TTL etcd answered with.
type renewal struct {
	sent time.Time
	ttl  time.Duration
}

// localDeadline is when a session whose last acknowledged renewal is r
// must consider itself lost: one heartbeat interval before the earliest
// moment etcd can expire its lease (see heartbeat).
func (s *Session) localDeadline(r renewal) time.Time {
	return r.sent.Add(r.ttl - s.interval)
}

// keepalive renews the session lease every interval, one renewal at a
// time, and hands every acknowledged renewal to heartbeat. A lease etcd no
// longer knows ends the session at once.
func (s *Session) keepalive(acks chan<- renewal) {
	defer s.wg.Done()
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.stopHeartbeat:
			// Test hook: stop renewing; heartbeat keeps the deadline.
			return
		case <-tick.C:
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(s.ctx, s.interval)
		resp, err := s.c.cli.KeepAliveOnce(ctx, s.lease)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			s.end(coordinator.ErrSessionLost, false)
			return
		case err != nil:
			// Transient: the next tick retries; heartbeat's deadline
			// decides.
			if s.ctx.Err() == nil {
				s.log.Warn("heartbeat failed", "error", err)
			}
		default:
			select {
			case acks <- renewal{sent: sent, ttl: time.Duration(resp.TTL) * time.Second}:
			case <-s.ctx.Done():
				return
			}
		}
	}
}

// watch keeps the view current from revision rev+1 on, recovering from
// compaction by re-reading the run and from leader loss by re-watching.
func (s *Session) watch(rev int64) {
	defer s.wg.Done()
	retry := time.NewTimer(0)
	<-retry.C
	defer retry.Stop()
	resync := false
	for s.ctx.Err() == nil {
		if resync {
			snap, err := s.c.cli.Get(s.ctx, s.prefix, clientv3.WithPrefix())
			if err != nil {
				if s.ctx.Err() == nil {
					s.log.Warn("re-read of the run failed; retrying", "error", err)
				}
				// Back off before retrying a failed read (not polling for
				// data: there is no watch to wait on yet).
				retry.Reset(200 * time.Millisecond)
				select {
				case <-retry.C:
				case <-s.ctx.Done():
				}
				continue
			}
			// Counted before the view delivers what the re-read found, so
			// whoever receives those results or lost claims sees the count.
			s.resyncs.Add(1)
			s.mu.Lock()
			toEnd := s.applySnapshotLocked(snap)
			s.viewRev = max(s.viewRev, snap.Header.Revision)
			s.advanceLocked()
			s.mu.Unlock()
			if toEnd != nil {
				s.end(toEnd, true)
				return
			}
			rev = snap.Header.Revision
			resync = false
			s.log.Debug("re-read the run after compaction", "revision", rev)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(s.ctx))
		if s.c.testWatchContext != nil {
			wctx = s.c.testWatchContext(s, wctx)
		}
		wch := s.c.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if resp.CompactRevision != 0 {
				s.log.Info("watch compacted; re-reading the run", "compact_revision", resp.CompactRevision)
				resync = true
				break
			}
			if err := resp.Err(); err != nil {
				if s.ctx.Err() == nil {
					s.log.Warn("watch interrupted; watching again", "error", err, "revision", rev)
				}
				break
			}
			s.mu.Lock()
			toEnd := s.applyEventsLocked(resp.Events)
			s.viewRev = max(s.viewRev, resp.Header.Revision)
			s.advanceLocked()
			s.mu.Unlock()
			if resp.Header.Revision > rev {
				rev = resp.Header.Revision
			}
			if toEnd != nil {
				cancel()
				s.end(toEnd, true)
				return
			}
		}
		cancel()
		if !resync && s.ctx.Err() == nil {
			// The stream ended without compaction (no leader, connection
			// loss): wait a moment so a down cluster is not hammered.
			retry.Reset(100 * time.Millisecond)
			select {
			case <-retry.C:
			case <-s.ctx.Done():
			}
		}
	}
}

// advanceLocked wakes those waiting for the view to reach a revision.
func (s *Session) advanceLocked() {
	close(s.advanced)
	s.advanced = make(chan struct{})
}

// RunID implements coordinator.Session.
func (s *Session) RunID() string { return s.runID }

// Member implements coordinator.Session.
func (s *Session) Member() coordinator.Member { return s.member }

// Done implements coordinator.Session.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err implements coordinator.Session.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close implements coordinator.Session.
func (s *Session) Close() error {
	s.releaseHeld()
	s.end(coordinator.ErrSessionClosed, true)
	s.wg.Wait()
	s.c.mu.Lock()
	delete(s.c.sessions, s)
	s.c.mu.Unlock()
	return nil
}

// kill ends the session as a crash would (tests): no graceful leave, but
// the lease is revoked so the suite need not wait for its expiry.
func (s *Session) kill() {
	s.end(coordinator.ErrSessionLost, true)
	s.wg.Wait()
}

// Sessions stay in c.sessions until Close, even once ended, so that
// Coordinator.Close waits for the goroutines of every session it created.

// ClaimHolder returns the member that holds module's claim as this
// session's view shows it (it follows etcd by a watch event), and whether
// one does.
func (s *Session) ClaimHolder(module string) (coordinator.Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ce, ok := s.view.claims[module]
	if !ok {
		return coordinator.Member{}, false
	}
	if me, ok := s.view.members[ce.idx]; ok {
		return me.m, true
	}
	return coordinator.Member{Index: ce.idx}, true
}

// Members implements coordinator.Session. It reads etcd (not the local
// view) so it is current even right after a join elsewhere.
func (s *Session) Members(ctx context.Context) ([]coordinator.Member, error) {
	resp, err := s.c.cli.Get(ctx, s.prefix+"members/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list members of run %s: %w", s.runID, err)
	}
	out := make([]coordinator.Member, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m coordinator.Member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("list members of run %s: decode %s: %w", s.runID, kv.Key, err)
		}
		out = append(out, m)
	}
	return out, nil // keys sort by zero-padded index
}

// WatchMembers implements coordinator.Session.
func (s *Session) WatchMembers(ctx context.Context) (<-chan coordinator.MemberEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	mb := mailbox.New[coordinator.MemberEvent]()
	for _, m := range s.view.sortedMembers() {
		mb.Put(coordinator.MemberEvent{Kind: coordinator.MemberJoined, Member: m})
	}
	s.watchers[mb] = struct{}{}
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		mb.Run(wctx)
		stop()
		cancel()
		s.mu.Lock()
		delete(s.watchers, mb)
		s.mu.Unlock()
	}()
	return mb.Out(), nil
}

// WaitRun implements coordinator.Session.
func (s *Session) WaitRun(ctx context.Context) (coordinator.RunInfo, error) {
	select {
	case <-s.infoReady:
	default:
		s.registerEarly() // ahead.go
		defer s.expireEarly()
	}
	select {
	case <-s.infoReady:
		s.mu.Lock()
		defer s.mu.Unlock()
		return *s.view.info, nil
	case <-s.done:
		return coordinator.RunInfo{}, s.Err()
	case <-ctx.Done():
		return coordinator.RunInfo{}, fmt.Errorf("wait for the run record of %s: %w", s.runID, ctx.Err())
	}
}

// claimValue is stored at claims/MOD.
type claimValue struct {
	Module  string             `json:"module"`
	Attempt int                `json:"attempt"`
	Member  coordinator.Member `json:"member"`
	Lease   int64              `json:"lease"`
	// Waiter and Assignment are set on a claim the master pushed to a
	// waiting Claim call (push.go): the call finds its claim by the
	// waiter key and returns the assignment from it. The assignment stays
	// raw JSON: only the member it was pushed to decodes it, and the
	// pusher writes the bytes it already encoded for the queue.
	Waiter     string          `json:"waiter,omitempty"`
	Assignment json.RawMessage `json:"assignment,omitempty"`
}

// spreadWidth bounds how many ready keys contending claimers spread over.
const spreadWidth = 16

// designScan bounds how far into the top priority a claimer looks for an
// item designated to its member.
const designScan = 256

// DefaultDesignationGrace is how long other members leave a ready item to
// the member it is designated to before they may try it too.
const DefaultDesignationGrace = 20 * time.Millisecond

// pickLocked chooses the queue item to try next, or nil and the time at
// which an item designated to another member becomes open to this one
// (zero: wait for the view to change). Only the top priority this member
// can run is considered. An item designated to this member comes first;
// then open items: uncontended, the head; once claims have been lost to
// other claimers, the first open keys are split into one band per live
// member (by rank of index), and this session's concurrent claimers start
// inside its own band, so members stop racing for the same key.
func (s *Session) pickLocked(now time.Time) (*qitem, time.Time) {
	var group []*qitem
	var wake time.Time
	started, top, scanned := false, 0, 0
	for _, it := range s.view.queue {
		if it.fit == 0 {
			it.fit = -1
			if coordinator.CanRun(it.a, s.member) {
				it.fit = 1
			}
		}
		if it.fit < 0 || s.taken[it.key] == it.modRev {
			continue
		}
		if !started {
			started, top = true, it.a.Priority
		} else if it.a.Priority != top {
			break // never take a lower priority while a higher one is ready
		}
		if scanned++; scanned > designScan {
			break
		}
		if it.designee == s.member.Index {
			if !s.inflight[it.key] {
				return it, time.Time{}
			}
			continue
		}
		if it.designee >= 0 {
			if open := it.seen.Add(s.c.grace); now.Before(open) {
				if wake.IsZero() || open.Before(wake) {
					wake = open
				}
				continue
			}
		}
		if len(group) < spreadWidth {
			group = append(group, it)
		}
	}
	if len(group) == 0 {
		return nil, wake
	}
	if s.contention == 0 {
		for _, it := range group {
			if !s.inflight[it.key] {
				return it, time.Time{} // uncontended: strict head of the open items
			}
		}
	}
	rank, members := 0, max(len(s.view.members), 1)
	for idx := range s.view.members {
		if idx < s.member.Index {
			rank++
		}
	}
	band := max(len(group)/members, 1)
	start := rank*band + len(s.inflight)
	for i := range group {
		if it := group[(start+i)%len(group)]; !s.inflight[it.key] {
			return it, time.Time{}
		}
	}
	return nil, wake
}

// Claim implements coordinator.Session. It takes what the local view
// offers; when that is nothing, it registers a waiter so the master can
// push the next assignment straight to it (push.go).
func (s *Session) Claim(ctx context.Context) (coordinator.Claim, error) {
	cl, err := s.claim(ctx)
	if err == nil {
		s.mu.Lock()
		s.claimedLocked(cl)
		s.mu.Unlock()
	}
	return cl, err
}

func (s *Session) claim(ctx context.Context) (coordinator.Claim, error) {
	var w *waiter
	s.mu.Lock()
	before := s.pubSeq // the Publishes this call may wait for (waitPublishLocked)
	s.mu.Unlock()
	noWaiter := false // registering failed: wait as without pushes
	backoff := 50 * time.Millisecond
	// giveUp ends the call without an assignment: withdraw the waiter, and
	// release whatever was pushed to it in the meantime.
	giveUp := func(err error) (coordinator.Claim, error) {
		if cl := s.withdraw(w); cl != nil {
			s.release(*cl)
		}
		return coordinator.Claim{}, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return giveUp(err)
		}
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return coordinator.Claim{}, err // the waiter went with the lease
		}
		if w != nil {
			if cl, ok := s.pushed[w.key]; ok {
				delete(s.pushed, w.key)
				delete(s.owned, w.key)
				hook := s.c.testPushed
				s.mu.Unlock()
				if hook != nil {
					hook(s, ctx)
				}
				if err := ctx.Err(); err != nil {
					s.release(cl)
					return coordinator.Claim{}, err
				}
				s.log.Debug("claimed (pushed)", "module", cl.Assignment.Module, "attempt", cl.Assignment.Attempt, "queue_wait", cl.ClaimedAt.Sub(cl.Assignment.EnqueuedAt))
				return cl, nil
			}
		}
		if cl, ok := s.takeSparePushedLocked(); ok {
			s.mu.Unlock()
			if pcl := s.withdraw(w); pcl != nil {
				s.mu.Lock()
				s.inbox = append(s.inbox, *pcl)
				s.mu.Unlock()
			}
			return cl, nil
		}
		if w == nil && len(s.spare) > 0 {
			// Adopt the waiter our Publish registered (ahead.go).
			w = s.spare[len(s.spare)-1]
			s.spare = s.spare[:len(s.spare)-1]
		}
		if len(s.ahead) > 0 || len(s.inbox) > 0 {
			var cl coordinator.Claim
			if len(s.ahead) > 0 {
				cl = s.ahead[0].cl
				s.ahead = s.ahead[1:]
			} else {
				cl = s.inbox[0]
				s.inbox = s.inbox[1:]
			}
			s.mu.Unlock()
			if pcl := s.withdraw(w); pcl != nil {
				s.mu.Lock()
				s.inbox = append(s.inbox, *pcl)
				s.mu.Unlock()
			}
			s.log.Debug("claimed (held)", "module", cl.Assignment.Module, "attempt", cl.Assignment.Attempt)
			return cl, nil
		}
		if s.prefetching || s.waitPublishLocked(before) {
			changed := s.changed
			s.mu.Unlock()
			select {
			case <-changed:
			case <-s.done:
			case <-ctx.Done():
			}
			continue
		}
		var it *qitem
		var wake time.Time
		if s.viewRev >= s.wroteRev && (w == nil || !w.consumed) {
			it, wake = s.pickLocked(time.Now())
		}
		if it == nil {
			if w == nil && !noWaiter && !s.closing {
				s.mu.Unlock()
				var err error
				w, err = s.register()
				if err != nil {
					if ctx.Err() != nil {
						return giveUp(ctx.Err())
					}
					s.log.Warn("could not register a waiter; waiting without one", "error", err)
					if cl := s.withdraw(w); cl != nil {
						return *cl, nil
					}
					w, noWaiter = nil, true
				}
				continue // the queue may have grown meanwhile
			}
			changed := s.changed
			s.mu.Unlock()
			var timeout <-chan time.Time
			if !wake.IsZero() {
				// An item designated to another member opens to us then.
				t := time.NewTimer(time.Until(wake))
				defer t.Stop()
				timeout = t.C
			}
			select {
			case <-changed:
			case <-timeout:
			case <-s.done:
			case <-ctx.Done():
			}
			continue
		}
		s.inflight[it.key] = true
		s.mu.Unlock()

		cl, ok, waiterGone, err := s.tryClaim(ctx, it, w)

		s.mu.Lock()
		delete(s.inflight, it.key)
		switch {
		case err != nil:
			s.unsureLocked(it.a)
		case ok:
			// Skipped until the watch removes it: the view (and with it
			// every member's designation) changes only by watch events.
			s.taken[it.key] = it.modRev
			if s.contention > 0 {
				s.contention--
			}
			if w != nil {
				delete(s.owned, w.key)
			}
			delete(s.unsure, it.a.Module)
		case waiterGone:
			// A push took our waiter first: its claim is on the way; the
			// queue key may well still be free.
			w.consumed = true
		default:
			s.taken[it.key] = it.modRev
			s.contention = 4 * spreadWidth
			s.c.conflicts.Add(1)
			s.log.Debug("claim lost to another claimer", "module", it.a.Module, "designee", it.designee)
		}
		s.mu.Unlock()
		if ok && ctx.Err() != nil {
			// Taken as the caller gave up: put it back, same attempt.
			s.release(cl)
			return coordinator.Claim{}, ctx.Err()
		}
		if ok {
			s.log.Debug("claimed", "module", it.a.Module, "attempt", it.a.Attempt, "queue_wait", cl.ClaimedAt.Sub(it.a.EnqueuedAt))
			return cl, nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return giveUp(ctx.Err())
			}
			if s.refusesWrites(err) {
				return giveUp(s.Err())
			}
			// A transient etcd error: retry while the session lives; if
			// etcd stays away the heartbeat ends the session.
			s.log.Warn("claim failed; retrying", "module", it.a.Module, "error", err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.done:
			case <-ctx.Done():
			}
			t.Stop()
			backoff = min(2*backoff, time.Second)
		}
	}
}

// tryClaim is the claim Txn: the queue key still at the revision we saw,
// and no claim on the module, then delete the queue key and create the
// claim on our lease, atomically. With a waiter, the Txn also deletes it
// and requires that it still exists (else nothing is written, and
// waiterGone says a push took it).
func (s *Session) tryClaim(ctx context.Context, it *qitem, w *waiter) (cl coordinator.Claim, ok, waiterGone bool, err error) {
	ckey := s.prefix + "claims/" + escape(it.a.Module)
	val, err := marshalClaim(claimValue{Module: it.a.Module, Attempt: it.a.Attempt, Member: s.member, Lease: int64(s.lease)})
	if err != nil {
		return coordinator.Claim{}, false, false, fmt.Errorf("encode claim: %w", err)
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(it.key), "=", it.modRev), clientv3.Compare(clientv3.CreateRevision(ckey), "=", 0)}
	then := []clientv3.Op{clientv3.OpDelete(it.key), clientv3.OpPut(ckey, string(val), clientv3.WithLease(s.lease))}
	var els []clientv3.Op
	if w != nil {
		if w.rev < 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(w.key), ">", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(w.key), "=", w.rev))
		}
		then = append(then, clientv3.OpDelete(w.key))
		els = append(els, clientv3.OpGet(w.key, clientv3.WithCountOnly()))
	}
	// Not the caller's ctx: a Txn cancelled in flight may still be
	// applied, and its claim would then be held with nobody to run it.
	// The caller's ctx is judged once the answer is known.
	tctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.DialTimeout)
	defer cancel()
	resp, err := s.c.cli.Txn(tctx).If(cmps...).Then(then...).Else(els...).Commit()
	if err == nil && s.c.testClaimAnswerLost != nil && s.c.testClaimAnswerLost() {
		err = errors.New("test: the claim Txn's answer was lost")
	}
	if err != nil {
		return coordinator.Claim{}, false, false, fmt.Errorf("claim %s: %w", it.a.Module, err)
	}
	if !resp.Succeeded {
		gone := w != nil && len(resp.Responses) == 1 && resp.Responses[0].GetResponseRange().GetCount() == 0
		return coordinator.Claim{}, false, gone, nil
	}
	return coordinator.Claim{
		Assignment: it.a,
		ClaimedAt:  time.Now(),
		Token:      strconv.FormatInt(resp.Header.Revision, 10),
	}, true, false, nil
}

// Publish implements coordinator.Session.
func (s *Session) Publish(ctx context.Context, cl coordinator.Claim, env coordinator.Envelope) error {
	seq := s.beginPublish(cl.Assignment.Module)
	defer s.endPublish(cl.Assignment.Module, seq)
	if env.Module != cl.Assignment.Module {
		return fmt.Errorf("publish result of %q for the claim of %q: the envelope's module must be the claimed module", env.Module, cl.Assignment.Module)
	}
	// An ended session holds no claims (its lease is gone or going), so
	// the answer is known without asking etcd, which may be the very
	// thing that is down.
	if err := s.Err(); err != nil {
		return fmt.Errorf("publish result of %s attempt %d: the session has ended (%v), so its claims are gone: %w", env.Module, cl.Assignment.Attempt, err, coordinator.ErrNotClaimant)
	}
	data, err := marshalJSON(env)
	if err != nil {
		return fmt.Errorf("publish result of %s: encode envelope: %w", env.Module, err)
	}
	if limit := s.c.cfg.maxEnvelopeBytes(); len(data) > limit {
		return &coordinator.ErrTooLarge{Size: len(data), Limit: limit}
	}
	rev, err := strconv.ParseInt(cl.Token, 10, 64)
	if err != nil {
		return fmt.Errorf("publish result of %s: claim token %q is not from this coordinator: %w", env.Module, cl.Token, coordinator.ErrNotClaimant)
	}
	ckey := s.prefix + "claims/" + escape(env.Module)
	then := []clientv3.Op{
		// Put before delete: the master pairs the claim's delete with a
		// result put of the same revision.
		clientv3.OpPut(s.prefix+"results/"+escape(env.Module), string(data), clientv3.WithLease(s.runLease)), clientv3.OpDelete(ckey)}
	fires := s.planFires(env, len(data), s.canHoldAhead(env.Module)) // staged.go
	self := false
	for _, f := range fires {
		f.idx = len(then)
		then = append(then, f.op)
		self = self || f.self
	}
	var aheads []*aheadPlan
	if !self {
		aheads = s.planAheads(env.Module, len(data)) // ahead.go
	}
	for _, a := range aheads {
		a.idx = len(then)
		then = append(then, a.op)
	}
	spare := s.planSpare(env.Module, len(aheads) > 0 || self)
	if spare != "" {
		then = append(then, clientv3.OpPut(spare, "", clientv3.WithLease(s.lease)))
	}
	op := newTxnOp(env.Module,
		[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(ckey), "=", rev), clientv3.Compare(clientv3.LeaseValue(ckey), "=", s.lease)},
		then, nil)
	if len(aheads) > 0 {
		op.nested = 2
	}
	if len(fires) > 0 {
		op.nested = fireWidth
	}
	r := s.pub.submit(ctx, op)
	s.finishFires(fires, r)
	s.finishAheads(aheads, r)
	s.finishSpare(spare, r)
	// Answered (or given up on): the slot is free. endPublish then wakes
	// a Claim call waiting for this Publish, after what the Txn claimed
	// ahead is held, so that the call finds it.
	s.mu.Lock()
	delete(s.running, env.Module)
	s.mu.Unlock()
	if err := r.err; err != nil {
		s.refusesWrites(err)
		if errors.Is(err, rpctypes.ErrRequestTooLarge) {
			return fmt.Errorf("publish result of %s: %w", env.Module, &coordinator.ErrTooLarge{Size: len(data), Limit: s.c.cfg.maxEnvelopeBytes(),
				Refused: fmt.Sprintf("etcd refused the request as too large: its --max-request-bytes is lower than the %d bytes modpipe assumes; start etcd with --max-request-bytes=%d or more, or return a smaller result", s.c.cfg.MaxRequestBytes, s.c.cfg.MaxRequestBytes)})
		}
		return fmt.Errorf("publish result of %s: %w", env.Module, err)
	}
	if !r.succeeded {
		return fmt.Errorf("publish result of %s attempt %d: %w (the claim was lost or already published; the result is discarded)", env.Module, cl.Assignment.Attempt, coordinator.ErrNotClaimant)
	}
	s.log.Debug("result published", "module", env.Module, "status", env.Status)
	return nil
}

// Result implements coordinator.Session.
func (s *Session) Result(ctx context.Context, module string) (coordinator.Envelope, error) {
	resp, err := s.c.cli.Get(ctx, s.prefix+"results/"+escape(module))
	if err != nil {
		return coordinator.Envelope{}, fmt.Errorf("result of %s in run %s: %w", module, s.runID, err)
	}
	if len(resp.Kvs) == 0 {
		return coordinator.Envelope{}, fmt.Errorf("result of %s in run %s: %w", module, s.runID, coordinator.ErrNoResult)
	}
	var env coordinator.Envelope
	if err := json.Unmarshal(resp.Kvs[0].Value, &env); err != nil {
		return coordinator.Envelope{}, fmt.Errorf("result of %s in run %s: decode envelope: %w", module, s.runID, err)
	}
	return env, nil
}

// Cancelled implements coordinator.Session.
func (s *Session) Cancelled() <-chan struct{} { return s.cancelled }

// CancelReason implements coordinator.Session.
func (s *Session) CancelReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.view.cancel == nil {
		return ""
	}
	return *s.view.cancel
}

// Master is the master's session on etcd.
type Master struct {
	*Session
}

var _ coordinator.MasterSession = (*Master)(nil)

// putOnce writes key on the run lease if it does not exist yet and
// reports whether it did.
func (m *Master) putOnce(ctx context.Context, key, value string) (bool, error) {
	resp, err := m.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(m.runLease))).
		Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// PublishRun implements coordinator.MasterSession.
func (m *Master) PublishRun(ctx context.Context, info coordinator.RunInfo) error {
	data, err := marshalJSON(info)
	if err != nil {
		return fmt.Errorf("publish run record of %s: %w", m.runID, err)
	}
	if len(data) > m.c.cfg.maxEnvelopeBytes() {
		return fmt.Errorf("publish run record of %s: %w", m.runID, &coordinator.ErrTooLarge{Size: len(data), Limit: m.c.cfg.maxEnvelopeBytes()})
	}
	ok, err := m.putOnce(ctx, m.prefix+"run", string(data))
	if err != nil {
		return fmt.Errorf("publish run record of %s: %w", m.runID, err)
	}
	if !ok {
		return fmt.Errorf("publish run record of %s: %w", m.runID, coordinator.ErrRunStarted)
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
	data, err := marshalAssignment(a)
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", a.Module, err)
	}
	qkey := queueKey(m.prefix, a.Module, a.Attempt)
	ckey := m.prefix + "claims/" + escape(a.Module)
	enqCmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(qkey), "=", 0), clientv3.Compare(clientv3.CreateRevision(ckey), "=", 0)}
	enqThen := []clientv3.Op{clientv3.OpPut(qkey, string(data), clientv3.WithLease(m.runLease))}
	enqElse := []clientv3.Op{clientv3.OpGet(ckey)}
	m.mu.Lock()
	m.enqueuedMods[a.Module] = true
	staging := m.staging[a.Module]
	m.mu.Unlock()
	if staging != nil {
		// The Stage Txn goes first, so this one knows how to treat it.
		select {
		case <-staging:
		case <-ctx.Done():
			return fmt.Errorf("enqueue %s: %w", a.Module, ctx.Err())
		}
	}
	m.mu.Lock()
	staged := a.Attempt == 1 && m.stageTried[a.Module]
	if staged && m.firedSeen[a.Module] {
		// A member dispatched it, and the view shows it: no Txn needed.
		delete(m.stageTried, a.Module)
		m.mu.Unlock()
		m.log.Debug("enqueue: a member dispatched the staged module already", "module", a.Module)
		return nil
	}
	w := m.pickWaiterLocked(a)
	own := &ownEnqueue{a: a, pushing: w != nil}
	m.ownEnqueues = append(m.ownEnqueues, own)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		if own.rev == 0 {
			own.done = true
		}
		m.mu.Unlock()
	}()
	var op *txnOp
	if w != nil {
		e := m.memberOf(w.idx)
		cv, err := marshalClaim(claimValue{Module: a.Module, Attempt: a.Attempt, Member: e, Lease: w.lease, Waiter: w.key, Assignment: data})
		if err != nil {
			m.unuse(w)
			return fmt.Errorf("enqueue %s: %w", a.Module, err)
		}
		// One commit either way: pushed to the waiter, or (any compare
		// failed) the ordinary enqueue in the else branch.
		op = newTxnOp(a.Module,
			append([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(w.key), "=", w.createRev)}, enqCmps...),
			[]clientv3.Op{clientv3.OpDelete(w.key), clientv3.OpPut(ckey, string(cv), clientv3.WithLease(clientv3.LeaseID(w.lease)))},
			[]clientv3.Op{clientv3.OpTxn(enqCmps, enqThen, enqElse)})
		op.nested = max(len(enqCmps), len(enqThen), len(enqElse))
		op.push = true
	} else {
		op = newTxnOp(a.Module, enqCmps, enqThen, enqElse)
	}
	if staged {
		op = m.wrapStaged(a.Module, op)
	}
	r := m.enq.submit(ctx, op)
	if r.err != nil {
		m.refusesWrites(r.err)
		m.unuse(w)
		return fmt.Errorf("enqueue %s attempt %d: %w", a.Module, a.Attempt, r.err)
	}
	if staged {
		var fired bool
		var err error
		if r, fired, err = unwrapStaged(r); err != nil {
			m.unuse(w)
			return fmt.Errorf("enqueue %s attempt %d: %w", a.Module, a.Attempt, err)
		}
		// Staged or not, it is dispatched now: a second Enqueue is an
		// ordinary one, refused while the first is queued or claimed.
		m.mu.Lock()
		delete(m.stageTried, a.Module)
		m.mu.Unlock()
		if fired {
			m.unuse(w)
			m.log.Debug("enqueue: a member dispatched the staged module already", "module", a.Module)
			return nil
		}
	}
	pushed := w != nil && r.succeeded
	if w != nil && !r.succeeded {
		m.unuse(w)
		inner := r.responses[0].GetResponseTxn()
		if inner == nil {
			return fmt.Errorf("enqueue %s attempt %d: etcd answered the enqueue with %T, not a Txn result", a.Module, a.Attempt, r.responses[0].Response)
		}
		r.succeeded, r.responses = inner.Succeeded, inner.Responses
	}
	if !r.succeeded {
		if kvs := r.responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			var cv claimValue
			_ = json.Unmarshal(kvs[0].Value, &cv)
			return fmt.Errorf("enqueue %s attempt %d: attempt %d is still claimed by %s; requeue only after its LostClaim", a.Module, a.Attempt, cv.Attempt, cv.Member)
		}
		return fmt.Errorf("enqueue %s attempt %d: already queued", a.Module, a.Attempt)
	}
	m.mu.Lock()
	m.wroteRev = max(m.wroteRev, r.rev)
	if !pushed {
		own.rev = r.rev // queued: counts until the view has it
		own.pushing = false
	}
	m.mu.Unlock()
	if pushed {
		m.c.pushes.Add(1)
		m.log.Debug("enqueued and pushed to a waiting member", "module", a.Module, "attempt", a.Attempt, "member", w.idx)
		return nil
	}
	m.log.Debug("enqueued", "module", a.Module, "attempt", a.Attempt, "priority", a.Priority, "requires", a.Requires)
	return nil
}

// memberOf returns the member record of index idx from the view.
func (m *Master) memberOf(idx int) coordinator.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view.members[idx].m
}

// unuse makes w available to pushes again (nil: nothing to do).
func (m *Master) unuse(w *waiterEntry) {
	if w == nil {
		return
	}
	m.mu.Lock()
	w.used = false
	m.mu.Unlock()
}

// Results implements coordinator.MasterSession.
func (m *Master) Results() <-chan coordinator.Envelope { return m.results.Out() }

// LostClaims implements coordinator.MasterSession.
func (m *Master) LostClaims() <-chan coordinator.LostClaim { return m.lost.Out() }

// Cancel implements coordinator.MasterSession.
func (m *Master) Cancel(ctx context.Context, reason string) error {
	ok, err := m.putOnce(ctx, m.prefix+"cancel", reason)
	if err != nil {
		return fmt.Errorf("cancel run %s: %w", m.runID, err)
	}
	if ok {
		m.log.Info("run cancelled", "reason", reason)
	}
	return nil
}

// Finish implements coordinator.MasterSession.
func (m *Master) Finish(ctx context.Context, status coordinator.Status) error {
	if !status.Valid() {
		return fmt.Errorf("finish run %s: unknown status %q", m.runID, status)
	}
	ok, err := m.putOnce(ctx, m.prefix+"end", string(status))
	if err != nil {
		return fmt.Errorf("finish run %s: %w", m.runID, err)
	}
	if !ok {
		return fmt.Errorf("finish run %s: already finished", m.runID)
	}
	m.log.Info("run finished", "status", status)
	return nil
}
