package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modpipe/modpipe/sdk"
)

// Result type names of the kinds.
const (
	ChecksumResultType = "file.checksum/v1"
	CopyResultType     = "file.copy/v1"
	WriteResultType    = "file.write/v1"
)

// File is one file a module looked at or produced.
type File struct {
	// Path is the file's path, relative to the module's dir when the
	// pattern was relative.
	Path string `json:"path"`
	// Source is where a copied file came from (copy only).
	Source string `json:"source,omitempty"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ChecksumConfig is the configuration of the checksum kind.
type ChecksumConfig struct {
	Paths      []string `modpipe:"paths" doc:"Files to hash: paths or patterns (*, ?, [..] per segment, ** for any directories), relative to dir. A directory means every file under it."`
	Dir        string   `modpipe:"dir,optional" doc:"Base directory of the patterns; default the host's working directory."`
	Output     string   `modpipe:"output,optional" doc:"Also write the sums to this file in sha256sum format (relative to dir)."`
	AllowEmpty bool     `modpipe:"allow_empty,optional" doc:"Succeed when the patterns match no file; by default that fails the module."`
}

// ChecksumResult is the value of a finished checksum module.
type ChecksumResult struct {
	Files      []File `json:"files"`
	Count      int    `json:"count"`
	TotalBytes int64  `json:"total_bytes"`
	// Output is the sums file written, if any.
	Output string `json:"output"`
}

// CopyConfig is the configuration of the copy kind.
type CopyConfig struct {
	From       []string `modpipe:"from" doc:"Files to copy: paths or patterns like in checksum, relative to dir."`
	To         string   `modpipe:"to" doc:"Destination directory (relative to dir); created if missing. Files keep their path relative to dir under it."`
	Dir        string   `modpipe:"dir,optional" doc:"Base directory of from and to; default the host's working directory."`
	Flatten    bool     `modpipe:"flatten,optional" doc:"Put every file directly in to, by base name; two files with the same name fail the module."`
	AllowEmpty bool     `modpipe:"allow_empty,optional" doc:"Succeed when from matches no file."`
}

// CopyResult is the value of a finished copy module.
type CopyResult struct {
	Files      []File `json:"files"`
	Count      int    `json:"count"`
	TotalBytes int64  `json:"total_bytes"`
}

// WriteConfig is the configuration of the write kind.
type WriteConfig struct {
	Path    string `modpipe:"path" doc:"File to write (relative to dir); parent directories are created."`
	Content string `modpipe:"content" doc:"The file's content."`
	Mode    string `modpipe:"mode,optional" doc:"Permission bits in octal, e.g. \"0755\"; default \"0644\"."`
	Dir     string `modpipe:"dir,optional" doc:"Base directory of path; default the host's working directory."`
}

// Validate checks that there is something to copy.
func (c CopyConfig) Validate() error {
	if len(c.From) == 0 {
		return sdk.AttributeError("from", "from is an empty list: name the files or patterns to copy")
	}
	return nil
}

// Validate checks that there is something to hash.
func (c ChecksumConfig) Validate() error {
	if len(c.Paths) == 0 {
		return sdk.AttributeError("paths", "paths is an empty list: name the files or patterns to hash")
	}
	return nil
}

// Validate checks the mode.
func (c WriteConfig) Validate() error {
	if _, err := c.mode(); err != nil {
		return sdk.AttributeError("mode", "%v", err) // the host points at its line
	}
	return nil
}

func (c WriteConfig) mode() (os.FileMode, error) {
	if c.Mode == "" {
		return 0o644, nil
	}
	m, err := strconv.ParseUint(c.Mode, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission like \"0644\" or \"0755\"", c.Mode)
	}
	return os.FileMode(m), nil
}

// Checksum hashes the matched files and optionally writes a sums file.
// The sums file itself is never among the files it lists: a run over a
// tree that holds the previous run's would list its stale hash.
func Checksum(cfg ChecksumConfig) (ChecksumResult, error) {
	matched, err := expandEach(cfg.Dir, cfg.Paths, cfg.AllowEmpty)
	if err != nil {
		return ChecksumResult{}, err
	}
	var out string
	if cfg.Output != "" {
		out = resolve(cfg.Dir, filepath.ToSlash(cfg.Output))
	}
	res := ChecksumResult{Files: []File{}}
	var sums strings.Builder
	for _, m := range matched {
		src := resolve(cfg.Dir, filepath.ToSlash(m.path))
		if out != "" && samePath(src, out) {
			continue
		}
		f, err := hashFile(src)
		if err != nil {
			return res, err
		}
		f.Path = m.path
		res.Files = append(res.Files, f)
		res.TotalBytes += f.Size
		fmt.Fprintf(&sums, "%s\n", sumLine(f.SHA256, filepath.ToSlash(m.path)))
	}
	res.Count = len(res.Files)
	if out != "" {
		if err := writeFile(out, []byte(sums.String()), 0o644); err != nil {
			return res, err
		}
		res.Output = cfg.Output
	}
	return res, nil
}

// sumLine is one line of a sha256sum file. A name with a newline or a
// backslash is escaped, and the line starts with a backslash, as GNU
// sha256sum writes it: else the line would break in two.
func sumLine(sum, name string) string {
	if !strings.ContainsAny(name, "\n\\\r") {
		return sum + "  " + name
	}
	esc := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\r", "\\r").Replace(name)
	return "\\" + sum + "  " + esc
}

// Copy copies the matched files into cfg.To. Every destination is worked
// out, and checked for two files flattened to one name, before anything
// is copied.
func Copy(cfg CopyConfig) (CopyResult, error) {
	matched, err := expandEach(cfg.Dir, cfg.From, cfg.AllowEmpty)
	if err != nil {
		return CopyResult{}, err
	}
	to := resolve(cfg.Dir, filepath.ToSlash(cfg.To))
	absTo, _ := filepath.Abs(to)
	type job struct {
		src, rel, from string
		same           bool // the source is its own destination
	}
	var jobs []job
	dest := map[string]string{}
	for _, m := range matched {
		src := resolve(cfg.Dir, filepath.ToSlash(m.path))
		abs, _ := filepath.Abs(src)
		if m.walkCovers(absTo) && strings.HasPrefix(abs, absTo+string(filepath.Separator)) {
			// A pattern that walks a tree holding the destination
			// (from = ["."], to = "out") would copy the copies of a
			// previous run into themselves, deeper each time.
			continue
		}
		rel := m.path
		if cfg.Flatten || filepath.IsAbs(m.path) || strings.HasPrefix(m.path, "..") {
			rel = filepath.Base(m.path)
		}
		if prev, ok := dest[rel]; ok {
			return CopyResult{Files: []File{}}, fmt.Errorf("both %q and %q would be copied to %q; copy them separately or without flatten (nothing was copied)", prev, m.path, filepath.Join(cfg.To, rel))
		}
		dest[rel] = m.path
		jobs = append(jobs, job{src: src, rel: rel, from: m.path, same: samePath(src, filepath.Join(to, rel))})
	}
	res := CopyResult{Files: []File{}}
	for _, j := range jobs {
		var f File
		if j.same {
			// Already where it is to be: listed, not copied onto itself.
			f, err = hashFile(j.src)
		} else {
			f, err = copyFile(j.src, filepath.Join(to, j.rel))
		}
		if err != nil {
			res.Count = len(res.Files)
			return res, err
		}
		f.Source = j.from
		f.Path = filepath.Join(cfg.To, j.rel)
		res.Files = append(res.Files, f)
		res.TotalBytes += f.Size
	}
	res.Count = len(res.Files)
	return res, nil
}

// Write writes one file.
func Write(cfg WriteConfig) (File, error) {
	mode, err := cfg.mode()
	if err != nil {
		return File{}, err
	}
	p := resolve(cfg.Dir, filepath.ToSlash(cfg.Path))
	if err := writeFile(p, []byte(cfg.Content), mode); err != nil {
		return File{}, err
	}
	sum := sha256.Sum256([]byte(cfg.Content))
	return File{Path: cfg.Path, Size: int64(len(cfg.Content)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func hashFile(p string) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return File{}, fmt.Errorf("hash %s: %w", p, err)
	}
	return File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copyFile copies src to dst (keeping its permission bits) through a
// temporary file renamed into place, so a reader never sees half a file.
func copyFile(src, dst string) (File, error) {
	in, err := os.Open(src)
	if err != nil {
		return File{}, fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return File{}, fmt.Errorf("copy %s: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return File{}, fmt.Errorf("copy %s: create the destination directory: %w", src, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return File{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	defer os.Remove(tmp.Name()) // after the rename this is a no-op
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return File{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return File{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// writeFile writes data through a temporary file renamed into place.
func writeFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("write %s: create its directory: %w", p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// samePath reports whether a and b name the same file: equal absolute
// paths, or the same file on disk.
func samePath(a, b string) bool {
	absA, errA := filepath.Abs(a)
	absB, errB := filepath.Abs(b)
	if errA == nil && errB == nil && absA == absB {
		return true
	}
	stA, errA := os.Stat(a)
	stB, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(stA, stB)
}

func noMatch(dir string, patterns []string) error {
	where := dir
	if where == "" {
		where = "the working directory"
	}
	return fmt.Errorf("no file matches %q in %s; check the patterns, or set allow_empty = true if that is expected", patterns, where)
}
