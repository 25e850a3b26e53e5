package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo makes a real repository with two commits, a tag on the second and a
// remote, with fixed identities and dates so the facts are predictable.
func repo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(),
			"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com",
			"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
			"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	run("add", "a.txt")
	run("commit", "-q", "-m", "first")
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b\n"), 0o644)
	run("add", "b.txt")
	run("commit", "-q", "-m", "second: with | odd % chars")
	run("tag", "v1.2.3")
	run("remote", "add", "origin", "https://example.com/org/repo.git")
	return dir
}

func TestCollectFacts(t *testing.T) {
	dir := repo(t)
	sha := func() string {
		out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}()
	real, _ := filepath.EvalSymlinks(dir)
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)

	tests := []struct {
		name    string
		cfg     FactsConfig
		prepare func(t *testing.T)
		want    Facts
		wantErr string
	}{
		{
			name: "clean tagged branch", cfg: FactsConfig{Dir: dir},
			want: Facts{Root: real, SHA: sha, ShortSHA: sha[:7], Branch: "main", Tag: "v1.2.3", Describe: "v1.2.3",
				Subject: "second: with | odd % chars", AuthorName: "Ada", AuthorEmail: "ada@example.com",
				CommitTime: "2024-01-02T03:04:05Z", RemoteURL: "https://example.com/org/repo.git"},
		},
		{
			name: "from a subdirectory, other remote", cfg: FactsConfig{Dir: filepath.Join(dir, "sub"), Remote: "upstream"},
			want: Facts{Root: real, SHA: sha, ShortSHA: sha[:7], Branch: "main", Tag: "v1.2.3", Describe: "v1.2.3",
				Subject: "second: with | odd % chars", AuthorName: "Ada", AuthorEmail: "ada@example.com",
				CommitTime: "2024-01-02T03:04:05Z"},
		},
		{
			name: "dirty detached", cfg: FactsConfig{Dir: dir},
			prepare: func(t *testing.T) {
				if out, err := exec.Command("git", "-C", dir, "checkout", "-q", "--detach", "HEAD~1").CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
				os.WriteFile(filepath.Join(dir, "a.txt"), []byte("changed\n"), 0o644)
			},
			want: Facts{Root: real, Dirty: true, Subject: "first", AuthorName: "Ada", AuthorEmail: "ada@example.com",
				CommitTime: "2024-01-02T03:04:05Z", RemoteURL: "https://example.com/org/repo.git"},
		},
		{name: "not a repository", cfg: FactsConfig{Dir: t.TempDir()}, wantErr: "is not inside a git repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.prepare != nil {
				tt.prepare(t)
			}
			got, err := CollectFacts(context.Background(), tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.SHA == "" { // detached at HEAD~1: compare the derived fields only
				if len(got.SHA) != 40 || got.SHA == sha || !strings.HasPrefix(got.SHA, got.ShortSHA) {
					t.Errorf("sha = %q short %q, want the first commit", got.SHA, got.ShortSHA)
				}
				if !strings.HasSuffix(got.Describe, "-dirty") {
					t.Errorf("describe = %q, want a -dirty suffix", got.Describe)
				}
				got.SHA, got.ShortSHA, got.Describe = "", "", ""
			}
			if got != tt.want {
				t.Errorf("facts =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// With several tags at HEAD, tag is the one describe names.
func TestTagAgreesWithDescribe(t *testing.T) {
	dir := repo(t)
	for _, args := range [][]string{{"tag", "v1.0.0"}, {"tag", "-a", "-m", "release", "v2.0.0"}} {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
			"GIT_COMMITTER_DATE=2024-01-02T03:04:05Z", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	f, err := CollectFacts(context.Background(), FactsConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if f.Describe != "v2.0.0" || f.Tag != f.Describe {
		t.Fatalf("tag %q, describe %q; want both v2.0.0 (the annotated tag)", f.Tag, f.Describe)
	}
}
