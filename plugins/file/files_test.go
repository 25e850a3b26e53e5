package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree makes a small directory tree and returns its root.
func tree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range map[string]string{
		"README.md":               "readme\n",
		"dist/app-linux.tar.gz":   "linux\n",
		"dist/app-darwin.tar.gz":  "darwin\n",
		"dist/nested/x/extra.zip": "zip\n",
		"src/main.go":             "package main\n",
		"tools/main.go":           "package main // tools\n",
		"src/util/util.go":        "package util\n",
		"src/util/util_test.go":   "package util\n",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("README.md", filepath.Join(root, "LINK.md")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestExpand(t *testing.T) {
	root := tree(t)
	tests := []struct {
		patterns []string
		want     string // comma-separated
		wantErr  string
	}{
		{patterns: []string{"*.md"}, want: "LINK.md,README.md"},
		{patterns: []string{"dist/*.tar.gz"}, want: "dist/app-darwin.tar.gz,dist/app-linux.tar.gz"},
		{patterns: []string{"dist/**/*.zip"}, want: "dist/nested/x/extra.zip"},
		{patterns: []string{"**/*_test.go"}, want: "src/util/util_test.go"},
		{patterns: []string{"src/**"}, want: "src/main.go,src/util/util.go,src/util/util_test.go"},
		{patterns: []string{"src"}, want: "src/main.go,src/util/util.go,src/util/util_test.go"},
		{patterns: []string{"src/main.go", "src/*.go"}, want: "src/main.go"},
		{patterns: []string{"./src/../README.md"}, want: "README.md"},
		{patterns: []string{"dist/app-[l]*"}, want: "dist/app-linux.tar.gz"},
		{patterns: []string{"missing.txt", "nope/*.go"}, want: ""},
		{patterns: []string{"[x"}, wantErr: "syntax error in pattern"},
		{patterns: []string{""}, wantErr: "empty path pattern"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.patterns, "+"), func(t *testing.T) {
			got, err := Expand(root, tt.patterns)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				got[i] = filepath.ToSlash(got[i])
			}
			if s := strings.Join(got, ","); s != tt.want {
				t.Errorf("Expand(%q) = %s, want %s", tt.patterns, s, tt.want)
			}
		})
	}
	t.Run("absolute", func(t *testing.T) {
		got, err := Expand("", []string{filepath.Join(root, "dist", "*.gz")})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != filepath.Join(root, "dist", "app-darwin.tar.gz") {
			t.Errorf("got %q", got)
		}
	})
}

// Digests as sha256sum(1) prints them.
const (
	sumLinux  = "d745fba1cb70ab9dc02a80eeba8a1864a0f32b2941e008c0af389be7b56ba830" // "linux\n"
	sumScript = "299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba" // "#!/bin/sh\necho hi\n"
)

func TestChecksum(t *testing.T) {
	root := tree(t)
	res, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"dist/*.tar.gz"}, Output: "dist/SHA256SUMS"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 2 || res.TotalBytes != int64(len("linux\n")+len("darwin\n")) || res.Output != "dist/SHA256SUMS" {
		t.Errorf("result = %+v", res)
	}
	sums, err := os.ReadFile(filepath.Join(root, "dist", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s  dist/app-darwin.tar.gz\n%s  dist/app-linux.tar.gz\n", res.Files[0].SHA256, res.Files[1].SHA256)
	if string(sums) != want {
		t.Errorf("sums file = %q, want %q", sums, want)
	}
	// Known digests, as sha256sum prints them.
	if res.Files[1].SHA256 != sumLinux {
		t.Errorf("sha256 of linux = %s", res.Files[1].SHA256)
	}

	if _, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"*.exe"}}); err == nil || !strings.Contains(err.Error(), "allow_empty") {
		t.Errorf("no match: err = %v, want a hint about allow_empty", err)
	}
	if res, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"*.exe"}, AllowEmpty: true}); err != nil || res.Count != 0 {
		t.Errorf("allow_empty: %+v, %v", res, err)
	}
}

func TestCopy(t *testing.T) {
	root := tree(t)
	res, err := Copy(CopyConfig{Dir: root, From: []string{"dist/**/*.tar.gz", "dist/**/*.zip"}, To: "out"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 3 {
		t.Fatalf("copied %d files, want 3: %+v", res.Count, res.Files)
	}
	for _, f := range res.Files {
		b, err := os.ReadFile(filepath.Join(root, f.Path))
		if err != nil {
			t.Fatalf("copied file %s: %v", f.Path, err)
		}
		if src, _ := os.ReadFile(filepath.Join(root, f.Source)); string(src) != string(b) {
			t.Errorf("%s differs from %s", f.Path, f.Source)
		}
		if !strings.HasPrefix(f.Path, filepath.Join("out", "dist")) {
			t.Errorf("path %s does not keep its relative path under out/", f.Path)
		}
	}
	// Copying again into a destination inside the matched tree does not
	// copy the copies.
	res, err = Copy(CopyConfig{Dir: root, From: []string{"."}, To: "out"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if strings.HasPrefix(f.Source, "out") {
			t.Errorf("copied %s from the destination", f.Source)
		}
	}

	if _, err := Copy(CopyConfig{Dir: root, From: []string{"src/**/*.go"}, To: "flat", Flatten: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "flat", "util_test.go")); err != nil {
		t.Errorf("flattened file missing: %v", err)
	}
	_, err = Copy(CopyConfig{Dir: root, From: []string{"**/main.go"}, To: "clash", Flatten: true})
	if err == nil || !strings.Contains(err.Error(), "would be copied to") {
		t.Errorf("two main.go flattened: err = %v, want a clash", err)
	}
}

func TestWrite(t *testing.T) {
	root := t.TempDir()
	f, err := Write(WriteConfig{Dir: root, Path: "bin/run.sh", Content: "#!/bin/sh\necho hi\n", Mode: "0755"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "bin", "run.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o755 || f.Size != st.Size() || f.SHA256 != sumScript {
		t.Errorf("file = %+v, mode %v", f, st.Mode())
	}
	if _, err := Write(WriteConfig{Dir: root, Path: "x", Mode: "rwx"}); err == nil || !strings.Contains(err.Error(), "octal") {
		t.Errorf("bad mode: err = %v", err)
	}
}

// Sources inside the destination are copied when the pattern points into
// it (gathering dist/linux/* into dist), and a file that is already its
// own destination is listed, not copied onto itself.
func TestCopyIntoAnAncestor(t *testing.T) {
	root := tree(t)
	res, err := Copy(CopyConfig{Dir: root, From: []string{"dist/nested/x/*.zip"}, To: "dist", Flatten: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != 1 || res.Files[0].Path != filepath.Join("dist", "extra.zip") {
		t.Fatalf("result %+v, want dist/extra.zip", res)
	}
	if b, err := os.ReadFile(filepath.Join(root, "dist", "extra.zip")); err != nil || string(b) != "zip\n" {
		t.Fatalf("dist/extra.zip: %q, %v", b, err)
	}
	res, err = Copy(CopyConfig{Dir: root, From: []string{"src/main.go"}, To: "."})
	if err != nil || res.Count != 1 || res.Files[0].Path != filepath.Join("src", "main.go") || res.Files[0].SHA256 == "" {
		t.Fatalf("a file onto itself: %+v, %v; want it listed", res, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "src", "main.go")); err != nil || string(b) != "package main\n" {
		t.Fatalf("src/main.go after copying onto itself: %q, %v", b, err)
	}
}

// Two files flattened to one name fail the module before anything is
// copied.
func TestCopyClashCopiesNothing(t *testing.T) {
	root := tree(t)
	_, err := Copy(CopyConfig{Dir: root, From: []string{"README.md", "src/main.go", "tools/main.go"}, To: "clash", Flatten: true})
	if err == nil || !strings.Contains(err.Error(), "nothing was copied") {
		t.Fatalf("err = %v, want a clash", err)
	}
	if _, err := os.Stat(filepath.Join(root, "clash")); !os.IsNotExist(err) {
		t.Fatalf("the destination was written before the clash was found: %v", err)
	}
}

// Every pattern must match unless allow_empty; dir must exist.
func TestEachPatternMustMatch(t *testing.T) {
	root := tree(t)
	_, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"dist/app-linux.tar.gz", "dist/app-windows.zip"}})
	if err == nil || !strings.Contains(err.Error(), `"dist/app-windows.zip"`) {
		t.Fatalf("err = %v, want the missing path named", err)
	}
	if res, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"dist/app-linux.tar.gz", "dist/app-windows.zip"}, AllowEmpty: true}); err != nil || res.Count != 1 {
		t.Fatalf("allow_empty: %+v, %v", res, err)
	}
	if _, err := Copy(CopyConfig{Dir: filepath.Join(root, "nope"), From: []string{"*"}, To: "x", AllowEmpty: true}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing dir: %v", err)
	}
}

// The sums file is not among the files it lists, so a second run over the
// same tree writes a file sha256sum -c accepts; a name with a newline is
// escaped as GNU sha256sum escapes it.
func TestChecksumLeavesOutItsOutput(t *testing.T) {
	root := tree(t)
	for range 2 {
		res, err := Checksum(ChecksumConfig{Dir: root, Paths: []string{"dist/**"}, Output: "dist/SHA256SUMS"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range res.Files {
			if strings.HasSuffix(f.Path, "SHA256SUMS") {
				t.Fatalf("the sums file lists itself: %+v", res.Files)
			}
		}
	}
	if got := sumLine("ab", "a\nb\\c"); got != `\ab  a\nb\\c` {
		t.Errorf("sumLine = %q", got)
	}
	if got := sumLine("ab", "plain name"); got != "ab  plain name" {
		t.Errorf("sumLine = %q", got)
	}
}
