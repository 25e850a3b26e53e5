package host

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/modpipe/modpipe/coordinator"
)

// RoleFlags are the distributed settings given on the command line. A nil
// or empty field was not given and falls back to the environment; the
// zero value means nothing was given.
type RoleFlags struct {
	// Instance is --instance; Total is --total.
	Instance, Total *int
	// RunID is --run-id.
	RunID string
}

// Role is this process's place in a run: which instance it is, of how
// many, in which run, and where that was learned (for messages).
type Role struct {
	// Instance is the index: 0 is the master (or the single machine),
	// 1..Total-1 are workers.
	Instance int
	// Total is the number of instances; 1 means single-machine mode.
	Total int
	// RunID is the run id every instance shares; "" in single-machine mode
	// when none was given.
	RunID string
	// Source says where Instance and Total came from: "--instance/--total",
	// "MODPIPE_INSTANCE/MODPIPE_TOTAL", "GitLab CI", "Buildkite", "CircleCI",
	// or "" when nothing set them.
	Source string
}

// Distributed reports whether the role is part of a distributed run
// (more than one instance). Total 1 is plain single-machine mode.
func (r Role) Distributed() bool { return r.Total > 1 }

// Master reports whether this instance is the master (or single machine).
func (r Role) Master() bool { return r.Instance == 0 }

// ciNodes describes how each CI system that runs parallel jobs tells a job
// its index and the number of jobs. GitHub Actions exposes neither: pass
// --instance ${{ strategy.job-index }} --total ${{ strategy.job-total }}.
var ciNodes = []struct {
	name         string
	index, total string
	indexFromOne bool // GitLab counts from 1
}{
	{name: "GitLab CI", index: "CI_NODE_INDEX", total: "CI_NODE_TOTAL", indexFromOne: true},
	{name: "Buildkite", index: "BUILDKITE_PARALLEL_JOB", total: "BUILDKITE_PARALLEL_JOB_COUNT"},
	{name: "CircleCI", index: "CIRCLE_NODE_INDEX", total: "CIRCLE_NODE_TOTAL"},
}

// ResolveRole works out this process's role (R5.1, R5.2): the instance
// index and total from flags, else MODPIPE_INSTANCE/MODPIPE_TOTAL, else
// the CI system's parallel-job variables; the run id from --run-id, else
// MODPIPE_RUN_ID, else the CI's run id and attempt. Without any of them,
// or with a total of 1, the role is single-machine mode. A distributed
// role without a run id is an error: instances could not find each other
// (a commit sha or a random value would mix runs or split them).
//
// Errors are *ExitError with ExitInvalid.
func ResolveRole(flags RoleFlags, environ []string) (Role, error) {
	env := envMap(environ)
	role := Role{Total: 1, RunID: flags.RunID}
	if role.RunID == "" {
		role.RunID = env["MODPIPE_RUN_ID"]
	}

	switch {
	case flags.Instance != nil || flags.Total != nil:
		if flags.Instance == nil || flags.Total == nil {
			return Role{}, exitErrorf(ExitInvalid, "--instance and --total go together: give both (e.g. --instance 0 --total 3), or neither for single-machine mode")
		}
		role.Instance, role.Total, role.Source = *flags.Instance, *flags.Total, "--instance/--total"
	case env["MODPIPE_INSTANCE"] != "" || env["MODPIPE_TOTAL"] != "":
		var err error
		if role.Instance, role.Total, err = envPair(env, "MODPIPE_INSTANCE", "MODPIPE_TOTAL", false); err != nil {
			return Role{}, err
		}
		role.Source = "MODPIPE_INSTANCE/MODPIPE_TOTAL"
	default:
		for _, ci := range ciNodes {
			if env[ci.index] == "" || env[ci.total] == "" {
				continue
			}
			var err error
			if role.Instance, role.Total, err = envPair(env, ci.index, ci.total, ci.indexFromOne); err != nil {
				return Role{}, fmt.Errorf("%s parallel job: %w", ci.name, err)
			}
			role.Source = ci.name
			break
		}
	}

	if role.Total < 1 {
		return Role{}, exitErrorf(ExitInvalid, "the total number of instances is %d (from %s); it must be 1 or more", role.Total, role.Source)
	}
	if role.Instance < 0 || role.Instance >= role.Total {
		return Role{}, exitErrorf(ExitInvalid, "instance %d is out of range for a run of %d instances (from %s): instances count from 0 (the master) to %d",
			role.Instance, role.Total, role.Source, role.Total-1)
	}
	if !role.Distributed() {
		return role, nil
	}
	if role.RunID == "" {
		role.RunID = ciRunID(env)
	}
	if role.RunID == "" {
		return Role{}, exitErrorf(ExitInvalid, "instance %d of %d (from %s) has no run id, so it cannot find the other instances: pass the same --run-id (or MODPIPE_RUN_ID) to every instance, e.g. the CI's pipeline id; under GitHub Actions, GitLab CI, Buildkite and CircleCI it is derived automatically",
			role.Instance, role.Total, role.Source)
	}
	if err := coordinator.ValidateRunID(role.RunID); err != nil {
		return Role{}, &ExitError{Code: ExitInvalid, Err: err}
	}
	return role, nil
}

// envPair reads an index/total pair of environment variables.
func envPair(env map[string]string, indexVar, totalVar string, fromOne bool) (int, int, error) {
	parse := func(name string) (int, error) {
		s := strings.TrimSpace(env[name])
		if s == "" {
			return 0, exitErrorf(ExitInvalid, "%s is set but %s is not: set both, or neither", otherOf(name, indexVar, totalVar), name)
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, exitErrorf(ExitInvalid, "%s=%q is not a whole number", name, s)
		}
		return n, nil
	}
	index, err := parse(indexVar)
	if err != nil {
		return 0, 0, err
	}
	total, err := parse(totalVar)
	if err != nil {
		return 0, 0, err
	}
	if fromOne {
		// GitLab numbers parallel jobs from 1; modpipe's master is 0.
		if index < 1 {
			return 0, 0, exitErrorf(ExitInvalid, "%s=%d: it counts from 1", indexVar, index)
		}
		index--
	}
	return index, total, nil
}

func otherOf(name, a, b string) string {
	if name == a {
		return b
	}
	return a
}
