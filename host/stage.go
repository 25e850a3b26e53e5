package host

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/graph"
)

// Staging runs ahead of the master's scheduler. When the dispatch of a
// module finds a stageable module within stageNear levels of dependents
// not yet staged, it stages every one within stageFar levels, so a chain
// is staged stageFar-stageNear modules per write rather than one.
// stageNear must cover how far the master's view trails a chain: one
// level staged a quarter of the steps too late on a chain of no-op
// modules over 3 workers, the master's Execute of B running after a
// member had dispatched B and B had finished.
const (
	stageNear = 4
	stageFar  = 12
	// stageVisit bounds the dependents one dispatch looks at, so a wide
	// graph costs the master little.
	stageVisit = 256
)

// stager stages, on the coordinator, the modules that a member may
// dispatch as soon as their one dependency succeeds (coordinator
// MasterSession.Stage): on a chain this saves the master's round trip
// between a module's end and its dependent's start.
type stager struct {
	sess    coordinator.MasterSession
	graph   *graph.Graph
	router  *router
	members *memberView
	log     hclog.Logger
	ctx     context.Context // the master's helpers: ends when the run does
	wg      *sync.WaitGroup // the master's: waits for the Stage calls

	mu     sync.Mutex
	staged map[string]bool // tried, by address
}

// stageable reports whether n may start on its own once its one
// dependency succeeds: nothing but that dependency decides when it runs.
// A module with global constraints (not_in_parallel, limits), always_run,
// or more than one dependency waits for the master's scheduler.
func stageable(n *graph.Node) bool {
	m := n.Module
	if m.AlwaysRun || m.Exclusive || len(m.NotInParallel) > 0 || len(m.Limits) > 0 {
		return false
	}
	deps := 0
	for _, d := range n.Deps {
		deps += len(d.Addresses)
	}
	return deps == 1
}

// after stages the stageable dependents of n that some live member can
// run (see stageNear). It returns at once; the Stage calls run on their
// own, owned by the master's wait group.
func (s *stager) after(n *graph.Node) {
	members, _ := s.members.snapshot()
	var todo []coordinator.Assignment
	near := false
	seen := map[string]bool{}
	level := []*graph.Node{n}
	s.mu.Lock()
	for depth := 1; depth <= stageFar && len(level) > 0 && len(seen) < stageVisit; depth++ {
		var next []*graph.Node
		for _, p := range level {
			for _, d := range s.graph.Dependents(p.Address) {
				if seen[d.Address] || len(seen) >= stageVisit {
					continue
				}
				seen[d.Address] = true
				next = append(next, d)
				if s.staged[d.Address] || !stageable(d) {
					continue
				}
				a := assignment(d, 1)
				if !canRun(a, members) {
					continue
				}
				near = near || depth <= stageNear
				todo = append(todo, a)
			}
		}
		level = next
	}
	if !near {
		todo = nil // nothing urgent: stage later, several at once
	}
	for _, a := range todo {
		s.staged[a.Module] = true
	}
	s.mu.Unlock()
	for _, a := range todo {
		// Registered first, so no outcome of a dispatch arrives unrouted.
		s.router.stage(a.Module)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.sess.Stage(s.ctx, a); err != nil && s.ctx.Err() == nil {
				// Only the shortcut is lost: the master enqueues it when
				// it is ready, as any other module.
				s.log.Warn("stage a module", "module", a.Module, "error", err)
			}
		}()
	}
}
