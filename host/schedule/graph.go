package schedule

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
)

// Scheduler runs one task graph. Build it with New; Run may be called more
// than once (each call is a fresh run) but not concurrently.
type Scheduler struct {
	exec  Executor
	opts  Options
	log   hclog.Logger
	nodes []node
	byID  map[string]int32
	// resources are the not_in_parallel keys (capacity 1) and the limit
	// groups (capacity max), numbered for the nodes' res lists.
	resources []resource
	// outOrder lists node indexes in Result.Envelopes order.
	outOrder []int32

	// published holds each finished task's envelope of the current (or
	// last) run, readable by executors through Envelope while Run runs.
	published []atomic.Pointer[coordinator.Envelope]

	runMu sync.Mutex // serialises Run
}

// node is the immutable, precomputed view of one task.
type node struct {
	task *Task
	// groups are the dependency groups as node indexes; groupNames are
	// what a skip reason calls each group.
	groups     [][]int32
	groupNames []string
	// ndeps is the number of distinct dependencies; dependents are the
	// distinct tasks that depend on this one.
	ndeps      int32
	dependents []int32
	// rank is the length of the longest chain of dependents below the task
	// (critical path); rankPos is the task's position in the total ready
	// order (priority, rank, Order, index), so heaps compare one integer.
	rank    int32
	rankPos int32
	// wave is the task's dependency depth: 0 without dependencies, else
	// one more than its deepest dependency.
	wave int32
	// res are the resource indexes (keys, then limits) the task holds while
	// it runs, deduplicated.
	res      []int32
	attempts int
}

// resource is a not_in_parallel key or a limit group.
type resource struct {
	name     string // "key db" or "limit heavy", for logs
	capacity int
}

// CycleError reports a dependency cycle. Cycle lists the task IDs around
// the cycle, each depending on the next and the last on the first.
type CycleError struct {
	Cycle []string
	// Involved is how many tasks are in or depend on a cycle.
	Involved int
}

func (e *CycleError) Error() string {
	var b strings.Builder
	b.WriteString("dependency cycle: ")
	for i, id := range e.Cycle {
		next := e.Cycle[(i+1)%len(e.Cycle)]
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s depends on %s", id, next)
	}
	fmt.Fprintf(&b, " (%d tasks cannot run because of it); remove one of these dependencies", e.Involved)
	return b.String()
}

// New checks the task graph and prepares it to run. It reports every
// problem it finds: nil or unnamed tasks, duplicate IDs, dependencies on
// unknown IDs, a task depending on itself, cycles, limit names missing from
// opts.Limits, limits below 1, negative attempts, backoff or parallelism.
func New(tasks []*Task, exec Executor, opts Options) (*Scheduler, error) {
	if exec == nil {
		return nil, errors.New("new scheduler: the executor is nil")
	}
	var errs []error
	if opts.Parallelism < 0 {
		errs = append(errs, fmt.Errorf("parallelism %d is negative: use 0 for unbounded or a positive number", opts.Parallelism))
	}
	if opts.OnFailure != Stop && opts.OnFailure != Continue {
		errs = append(errs, fmt.Errorf("on_failure %v is not valid: use Stop or Continue", opts.OnFailure))
	}
	s := &Scheduler{
		exec:  exec,
		opts:  opts,
		log:   opts.Logger,
		nodes: make([]node, len(tasks)),
		byID:  make(map[string]int32, len(tasks)),
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}

	// Limit groups first, in name order so resource numbering is stable.
	resIndex := map[string]int32{}
	limitNames := make([]string, 0, len(opts.Limits))
	for name := range opts.Limits {
		limitNames = append(limitNames, name)
	}
	sort.Strings(limitNames)
	for _, name := range limitNames {
		limitMax := opts.Limits[name]
		if limitMax < 1 {
			errs = append(errs, fmt.Errorf("limit %q has max %d: it must be at least 1", name, limitMax))
		}
		resIndex["limit\x00"+name] = int32(len(s.resources))
		s.resources = append(s.resources, resource{name: "limit " + name, capacity: limitMax})
	}

	for i, t := range tasks {
		if t == nil {
			errs = append(errs, fmt.Errorf("task #%d is nil", i))
			continue
		}
		s.nodes[i].task = t
		if t.ID == "" {
			errs = append(errs, fmt.Errorf("task #%d has an empty ID", i))
			continue
		}
		if _, dup := s.byID[t.ID]; dup {
			errs = append(errs, fmt.Errorf("task %q is defined twice: task IDs must be unique", t.ID))
			continue
		}
		s.byID[t.ID] = int32(i)
	}

	// seenBy[d] == i+1 once task i has counted dependency d, so a
	// dependency named twice counts once without a map per task.
	seenBy := make([]int32, len(s.nodes))
	for i := range s.nodes {
		n := &s.nodes[i]
		t := n.task
		if t == nil {
			continue
		}
		switch {
		case t.Attempts < 0:
			errs = append(errs, fmt.Errorf("task %q has %d attempts: it must be at least 1", t.ID, t.Attempts))
		case t.Attempts == 0:
			n.attempts = 1
		default:
			n.attempts = t.Attempts
		}
		if t.Backoff < 0 {
			errs = append(errs, fmt.Errorf("task %q has a negative backoff %s", t.ID, t.Backoff))
		}
		if len(t.Deps) > 0 {
			n.groups = make([][]int32, 0, len(t.Deps))
			n.groupNames = make([]string, 0, len(t.Deps))
		}
		for _, group := range t.Deps {
			g := make([]int32, 0, len(group))
			for _, id := range group {
				d, ok := s.byID[id]
				switch {
				case !ok:
					errs = append(errs, fmt.Errorf("task %q depends on %q, which is not a task of this run", t.ID, id))
					continue
				case d == int32(i):
					errs = append(errs, &CycleError{Cycle: []string{t.ID}, Involved: 1})
					continue
				}
				g = append(g, d)
				if seenBy[d] != int32(i)+1 { // first time task i names d
					seenBy[d] = int32(i) + 1
					n.ndeps++
					s.nodes[d].dependents = append(s.nodes[d].dependents, int32(i))
				}
			}
			if len(g) > 0 {
				n.groups = append(n.groups, g)
				n.groupNames = append(n.groupNames, groupName(group))
			}
		}
		for _, key := range t.Keys {
			r, ok := resIndex["key\x00"+key]
			if !ok {
				r = int32(len(s.resources))
				resIndex["key\x00"+key] = r
				s.resources = append(s.resources, resource{name: "key " + key, capacity: 1})
			}
			if !slices.Contains(n.res, r) {
				n.res = append(n.res, r)
			}
		}
		for _, name := range t.Limits {
			r, ok := resIndex["limit\x00"+name]
			if !ok {
				errs = append(errs, fmt.Errorf("task %q uses limit %q, which is not defined: add limit %q { max = N } or remove it from the task's limits", t.ID, name, name))
				continue
			}
			if !slices.Contains(n.res, r) {
				n.res = append(n.res, r)
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("new scheduler: %w", errors.Join(errs...))
	}
	if err := s.rankNodes(); err != nil {
		return nil, fmt.Errorf("new scheduler: %w", err)
	}

	s.outOrder = make([]int32, len(s.nodes))
	for i := range s.outOrder {
		s.outOrder[i] = int32(i)
	}
	sort.SliceStable(s.outOrder, func(a, b int) bool {
		return s.nodes[s.outOrder[a]].task.Order < s.nodes[s.outOrder[b]].task.Order
	})
	s.published = make([]atomic.Pointer[coordinator.Envelope], len(s.nodes))
	return s, nil
}

// groupName names a dependency group in skip reasons: the ID for a group
// of one, the module name when every instance is NAME[...], else the IDs.
func groupName(group []string) string {
	if len(group) == 1 {
		return group[0]
	}
	base, _, ok := strings.Cut(group[0], "[")
	if ok {
		for _, id := range group[1:] {
			if b, _, ok := strings.Cut(id, "["); !ok || b != base {
				return strings.Join(group, ", ")
			}
		}
		return base
	}
	return strings.Join(group, ", ")
}

// rankNodes orders the graph topologically (reporting a cycle if there is
// one), computes each task's critical path length, and fixes the total
// order ready tasks are taken in.
func (s *Scheduler) rankNodes() error {
	n := len(s.nodes)
	indeg := make([]int32, n)
	topo := make([]int32, 0, n)
	for i := range s.nodes {
		indeg[i] = s.nodes[i].ndeps
		if indeg[i] == 0 {
			topo = append(topo, int32(i))
		}
	}
	for head := 0; head < len(topo); head++ {
		cur := &s.nodes[topo[head]]
		for _, d := range cur.dependents {
			if w := cur.wave + 1; w > s.nodes[d].wave {
				s.nodes[d].wave = w
			}
			indeg[d]--
			if indeg[d] == 0 {
				topo = append(topo, d)
			}
		}
	}
	if len(topo) < n {
		return s.findCycle(indeg, n-len(topo))
	}
	for i := n - 1; i >= 0; i-- {
		nd := &s.nodes[topo[i]]
		for _, d := range nd.dependents {
			if r := s.nodes[d].rank + 1; r > nd.rank {
				nd.rank = r
			}
		}
	}
	order := make([]int32, n)
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool { return s.ahead(order[a], order[b]) })
	for pos, i := range order {
		s.nodes[i].rankPos = int32(pos)
	}
	return nil
}

// ahead reports whether ready task a is taken before ready task b:
// priority descending, critical path descending, file order, given order.
func (s *Scheduler) ahead(a, b int32) bool {
	na, nb := &s.nodes[a], &s.nodes[b]
	if na.task.Priority != nb.task.Priority {
		return na.task.Priority > nb.task.Priority
	}
	if na.rank != nb.rank {
		return na.rank > nb.rank
	}
	if na.task.Order != nb.task.Order {
		return na.task.Order < nb.task.Order
	}
	return a < b
}

// findCycle walks from a task left over by the topological sort along its
// unfinished dependencies until it comes back to a task it has seen: every
// leftover task has at least one leftover dependency, so the walk must
// close a cycle.
func (s *Scheduler) findCycle(indeg []int32, involved int) error {
	start := int32(-1)
	for i := range indeg {
		if indeg[i] > 0 {
			start = int32(i)
			break
		}
	}
	step := map[int32]int{}
	var path []int32
	for cur := start; ; {
		if at, ok := step[cur]; ok {
			cyc := make([]string, 0, len(path)-at)
			for _, i := range path[at:] {
				cyc = append(cyc, s.nodes[i].task.ID)
			}
			return &CycleError{Cycle: cyc, Involved: involved}
		}
		step[cur] = len(path)
		path = append(path, cur)
		next := int32(-1)
		for _, g := range s.nodes[cur].groups {
			for _, d := range g {
				if indeg[d] > 0 {
					next = d
					break
				}
			}
			if next >= 0 {
				break
			}
		}
		cur = next
	}
}

// Envelope returns the final envelope of the task id in the current (or
// last) run, or false if that task has not finished. Executors call it
// while Run runs to fetch their dependencies' results: a task's envelope is
// published before any of its dependents starts.
func (s *Scheduler) Envelope(id string) (coordinator.Envelope, bool) {
	i, ok := s.byID[id]
	if !ok {
		return coordinator.Envelope{}, false
	}
	env := s.published[i].Load()
	if env == nil {
		return coordinator.Envelope{}, false
	}
	return *env, true
}

// Task returns the task with the given ID, or nil.
func (s *Scheduler) Task(id string) *Task {
	if i, ok := s.byID[id]; ok {
		return s.nodes[i].task
	}
	return nil
}

// CriticalPath returns the length of the longest chain of tasks that
// depend, directly or not, on the task id (0 for a task nothing depends
// on), the tie-breaker after priority. False if id is unknown.
func (s *Scheduler) CriticalPath(id string) (int, bool) {
	if i, ok := s.byID[id]; ok {
		return int(s.nodes[i].rank), true
	}
	return 0, false
}

// Waves groups the task IDs by dependency depth, the plan a dry run
// prints: wave 0 has the tasks without dependencies, wave k the tasks
// whose deepest dependency is in wave k-1. Within a wave, tasks are in the
// order the scheduler prefers them (priority, critical path, file order).
// Real start times also depend on outcomes, constraints and parallelism.
func (s *Scheduler) Waves() [][]string {
	byPos := make([]int32, len(s.nodes))
	for i := range s.nodes {
		byPos[s.nodes[i].rankPos] = int32(i)
	}
	var waves [][]string
	for _, i := range byPos {
		w := int(s.nodes[i].wave)
		for len(waves) <= w {
			waves = append(waves, nil)
		}
		waves[w] = append(waves[w], s.nodes[i].task.ID)
	}
	return waves
}
