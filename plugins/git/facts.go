package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/modpipe/modpipe/plugins/internal/proc"
)

// FactsResultType is the versioned name of the facts kind's result.
const FactsResultType = "git.facts/v1"

// FactsConfig is the configuration of the facts kind.
type FactsConfig struct {
	Dir string `modpipe:"dir,optional" doc:"A directory inside the repository; default the host's working directory."`
	// Remote names the remote whose URL is reported.
	Remote string `modpipe:"remote,optional" doc:"Remote whose URL is reported as remote_url; default \"origin\"."`
}

// Facts describes the repository's checked-out commit.
type Facts struct {
	// Root is the repository's top-level directory.
	Root     string `json:"root"`
	SHA      string `json:"sha"`
	ShortSHA string `json:"short_sha"`
	// Branch is the checked-out branch, "" on a detached HEAD.
	Branch string `json:"branch"`
	// Tag is a tag pointing exactly at HEAD (the most recent if several),
	// or "".
	Tag string `json:"tag"`
	// Describe is `git describe --tags --always --dirty`.
	Describe string `json:"describe"`
	// Dirty says the work tree or index has uncommitted changes (untracked
	// files included).
	Dirty       bool   `json:"dirty"`
	Subject     string `json:"subject"`
	AuthorName  string `json:"author_name"`
	AuthorEmail string `json:"author_email"`
	// CommitTime is the committer date in RFC 3339.
	CommitTime string `json:"commit_time"`
	// RemoteURL is the configured remote's URL, or "" without one.
	RemoteURL string `json:"remote_url"`
}

// git runs one git command in dir and returns its stdout lines. A
// non-zero exit becomes an error carrying git's stderr.
func git(ctx context.Context, dir string, args ...string) ([]string, error) {
	var out []string
	stderr := proc.NewTail(10)
	exit, err := proc.Run(ctx, proc.Command{
		Argv: append([]string{"git"}, args...),
		Dir:  dir,
		// A fixed locale keeps git's messages parseable; no pager, no
		// prompts for credentials in CI.
		Env:    append(proc.Environ(), "LC_ALL=C", "GIT_PAGER=cat", "GIT_TERMINAL_PROMPT=0"),
		Stdout: func(l string) { out = append(out, l) },
		Stderr: stderr.Add,
	})
	if err != nil {
		var nf *proc.NotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("git is not installed or not on PATH: %w", err)
		}
		return nil, err
	}
	if exit.Code != 0 {
		return out, &gitError{args: args, code: exit.Code, stderr: stderr.String()}
	}
	return out, nil
}

type gitError struct {
	args   []string
	code   int
	stderr string
}

func (e *gitError) Error() string {
	return fmt.Sprintf("git %s: exit status %d: %s", strings.Join(e.args, " "), e.code, strings.TrimSpace(e.stderr))
}

// CollectFacts reads the facts of the repository containing dir.
func CollectFacts(ctx context.Context, cfg FactsConfig) (Facts, error) {
	remote := cfg.Remote
	if remote == "" {
		remote = "origin"
	}
	root, err := git(ctx, cfg.Dir, "rev-parse", "--show-toplevel")
	if err != nil {
		where := cfg.Dir
		if where == "" {
			where = "the working directory"
		}
		return Facts{}, fmt.Errorf("%s is not inside a git repository (or git cannot read it): %w", where, err)
	}
	var f Facts
	f.Root = first(root)

	// One log call for everything about HEAD: fields separated by NUL-free
	// unit separators so subjects with any text survive.
	const sep = "\x1f"
	head, err := git(ctx, cfg.Dir, "log", "-1", "--format=%H"+sep+"%h"+sep+"%s"+sep+"%an"+sep+"%ae"+sep+"%ct")
	if err != nil {
		return Facts{}, fmt.Errorf("read HEAD (does the repository have a commit yet?): %w", err)
	}
	parts := strings.Split(first(head), sep)
	if len(parts) != 6 {
		return Facts{}, fmt.Errorf("read HEAD: unexpected git log output %q", first(head))
	}
	f.SHA, f.ShortSHA, f.Subject, f.AuthorName, f.AuthorEmail = parts[0], parts[1], parts[2], parts[3], parts[4]
	if secs, err := strconv.ParseInt(parts[5], 10, 64); err == nil {
		f.CommitTime = time.Unix(secs, 0).UTC().Format(time.RFC3339)
	}

	// symbolic-ref fails on a detached HEAD, which is a fact, not an error.
	if branch, err := git(ctx, cfg.Dir, "symbolic-ref", "--quiet", "--short", "HEAD"); err == nil {
		f.Branch = first(branch)
	}
	tags, err := git(ctx, cfg.Dir, "tag", "--points-at", "HEAD", "--sort=-creatordate")
	if err != nil {
		return Facts{}, fmt.Errorf("list tags at HEAD: %w", err)
	}
	f.Tag = first(tags)
	describe, err := git(ctx, cfg.Dir, "describe", "--tags", "--always", "--dirty")
	if err != nil {
		return Facts{}, fmt.Errorf("describe HEAD: %w", err)
	}
	f.Describe = first(describe)
	// Several tags at HEAD: the one describe names, so the two facts
	// agree (git describe prefers annotated tags, which the date order
	// above does not).
	if named := strings.TrimSuffix(f.Describe, "-dirty"); slices.Contains(tags, named) {
		f.Tag = named
	}
	status, err := git(ctx, cfg.Dir, "status", "--porcelain")
	if err != nil {
		return Facts{}, fmt.Errorf("read the work tree status: %w", err)
	}
	f.Dirty = len(status) > 0
	// No remote is normal (a fresh clone in a test, a local repo).
	if url, err := git(ctx, cfg.Dir, "remote", "get-url", remote); err == nil {
		f.RemoteURL = first(url)
	}
	return f, nil
}

func first(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return lines[0]
}
