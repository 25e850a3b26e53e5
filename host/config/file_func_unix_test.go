//go:build unix

package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// file() reads regular files only, and no more than its limit: a named
// pipe used to hang the load (opening it waits for a writer), and
// /dev/zero used to fill the memory until the host crashed.
func TestFileRefusesWhatIsNotARegularFile(t *testing.T) {
	const fileLimit = 64 << 20 // as docs/pipeline-reference.md says
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// Sparse: it takes no room on the disk, and the old file() read it.
	large := filepath.Join(dir, "large.txt")
	f, err := os.Create(large)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(fileLimit + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	atLimit := filepath.Join(dir, "limit.txt")
	if err := os.WriteFile(atLimit, []byte(strings.Repeat("x", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(atLimit, fileLimit); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path, wantErr string
	}{
		{"a named pipe", fifo, fifo + " is a named pipe (FIFO), not a regular file; file() reads only regular files"},
		{"a character device", "/dev/null", "/dev/null is a character device, not a regular file"},
		{"a directory", dir, dir + " is a directory, not a regular file"},
		{"a file over the limit", large, large + " is larger than file()'s limit of 64 MiB"},
		{"a file at the limit", atLimit, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type loaded struct {
				p   *Pipeline
				err string
			}
			done := make(chan loaded, 1)
			go func() {
				p, diags := loadString(t, fmt.Sprintf("locals {\n  x = file(%q)\n}\n", tc.path), testOptions())
				got := loaded{p: p}
				if diags.HasErrors() {
					got.err = diags.Error()
				}
				done <- got
			}()
			var got loaded
			select {
			case got = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("file(%q) hung", tc.path)
			}
			if tc.wantErr == "" {
				if got.err != "" || len(got.p.Locals["x"].AsString()) != fileLimit {
					t.Fatalf("file(%q): %s; want the whole file", tc.path, got.err)
				}
				return
			}
			if !strings.Contains(got.err, tc.wantErr) || !strings.Contains(got.err, "pipeline.hcl:2,") {
				t.Errorf("file(%q) error:\n%s\nwant it at pipeline.hcl:2 with %q", tc.path, got.err, tc.wantErr)
			}
			if strings.Count(got.err, tc.path) != 1 {
				t.Errorf("file(%q) error names the path more than once: %s", tc.path, got.err)
			}
		})
	}
}
