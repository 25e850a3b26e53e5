//go:build unix

package report

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A report path that is not a plain file is written as a shell's >
// would write it: a symlink keeps pointing at its file, a FIFO's reader
// gets the report, a device is written (and its error reported), a
// directory is refused. The report used to be renamed over each of them.
func TestWriteSpecialPaths(t *testing.T) {
	run := fixture(t)
	var want bytes.Buffer
	if err := Render(&want, "json", run); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	t.Run("symlink", func(t *testing.T) {
		target := filepath.Join(dir, "target.json")
		link := filepath.Join(dir, "link.json")
		if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := Write(Spec{Format: "json", Path: link}, run); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link is no longer a symlink (%v)", err)
		}
		if got, _ := os.ReadFile(target); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("the link's target holds %q", got)
		}
	})

	t.Run("dangling symlink", func(t *testing.T) {
		target := filepath.Join(dir, "reports", "missing.json")
		link := filepath.Join(dir, "dangling.json")
		if err := os.Symlink(filepath.Join("reports", "missing.json"), link); err != nil {
			t.Fatal(err)
		}
		if err := Write(Spec{Format: "json", Path: link}, run); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link is no longer a symlink (%v)", err)
		}
		if got, _ := os.ReadFile(target); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("the link's target holds %q", got)
		}
	})

	t.Run("fifo", func(t *testing.T) {
		fifo := filepath.Join(dir, "report.fifo")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		read := make(chan []byte, 1)
		go func() {
			f, err := os.Open(fifo)
			if err != nil {
				read <- nil
				return
			}
			defer f.Close()
			b, _ := io.ReadAll(f)
			read <- b
		}()
		if err := Write(Spec{Format: "json", Path: fifo}, run); err != nil {
			t.Fatal(err)
		}
		if got := <-read; !bytes.Equal(got, want.Bytes()) {
			t.Errorf("the FIFO's reader got %d bytes, want %d", len(got), want.Len())
		}
		if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("the FIFO was replaced (%v)", err)
		}
	})

	t.Run("device", func(t *testing.T) {
		if _, err := os.Stat("/dev/full"); err != nil {
			t.Skip("no /dev/full here")
		}
		err := Write(Spec{Format: "json", Path: "/dev/full"}, run)
		if err == nil || !strings.Contains(err.Error(), "/dev/full") {
			t.Errorf("err = %v, want the device's write error", err)
		}
		if st, err := os.Stat("/dev/full"); err != nil || st.Mode()&os.ModeDevice == 0 {
			t.Fatalf("/dev/full is no longer a device (%v)", err)
		}
	})

	t.Run("directory", func(t *testing.T) {
		err := Write(Spec{Format: "json", Path: dir}, run)
		if err == nil || !strings.Contains(err.Error(), "it is a directory") {
			t.Errorf("err = %v, want a refusal", err)
		}
	})
}

// Check refuses before a run what Write would refuse after it, and
// accepts what Write accepts, leaving no file behind.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notadir")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string // want: "" to accept
	}{
		{"new file", filepath.Join(dir, "r.json"), ""},
		{"new folders", filepath.Join(dir, "a", "b", "r.json"), ""},
		{"existing file", file, ""},
		{"device", os.DevNull, ""},
		{"a directory", dir, "it is a directory"},
		{"under a file", filepath.Join(file, "r.json"), "not a directory"},
		{"under /proc", "/proc/modpipe-nope/r.json", "/proc/modpipe-nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(Spec{Format: "json", Path: tc.path})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if _, err := os.Stat(tc.path); tc.path != file && tc.path != os.DevNull && !os.IsNotExist(err) {
					t.Fatalf("Check left %s behind (%v)", tc.path, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--report json="+tc.path) {
				t.Fatalf("Check: %v; want an error naming the flag and containing %q", err, tc.want)
			}
		})
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", "*", ".report-*"))
	top, _ := filepath.Glob(filepath.Join(dir, ".report-*"))
	if len(leftovers)+len(top) > 0 {
		t.Fatalf("temporary files left: %v %v", leftovers, top)
	}
}

// A /dev/fd/N path is a descriptor given to the host, never one the host
// opened itself: fd 3 in a fresh host is the runtime's cgroup file, and a
// report sent there ran the whole pipeline, then failed or wrote into it.
func TestCheckDescriptors(t *testing.T) {
	own, err := os.Open(os.DevNull) // close-on-exec, as all of Go's files
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	given, err := syscall.Dup(int(own.Fd())) // dup(2) clears close-on-exec, as exec leaves a shell's 3>file
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(given)
	for _, tc := range []struct {
		name, path, want string // want: "" to accept
	}{
		{"given", "/dev/fd/" + strconv.Itoa(given), ""},
		{"given, /proc/self/fd", "/proc/self/fd/" + strconv.Itoa(given), ""},
		{"the host's own", "/dev/fd/" + strconv.Itoa(int(own.Fd())), "was not given to the host"},
		{"not open", "/dev/fd/999", "is not open in the host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(Spec{Format: "json", Path: tc.path})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check: %v; want an error containing %q", err, tc.want)
			}
		})
	}
}
