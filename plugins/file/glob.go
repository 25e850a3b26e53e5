package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Expand returns the regular files matching patterns, relative to base
// (absolute patterns give absolute paths), sorted and without duplicates.
// Patterns use path.Match syntax per path segment, plus "**" for any number
// of directories: "dist/**/*.tar.gz". A pattern without wildcards names a
// file, or a directory meaning every file under it.
func Expand(base string, patterns []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, pat := range patterns {
		if pat == "" {
			return nil, errors.New("an empty path pattern matches nothing; remove it")
		}
		pat = filepath.ToSlash(filepath.Clean(pat))
		if pat == "." {
			pat = "**" // the base directory itself: everything under it
		}
		segs := strings.Split(pat, "/")
		for _, s := range segs {
			if _, err := path.Match(s, ""); err != nil {
				return nil, fmt.Errorf("pattern %q: %w", pat, err)
			}
		}
		// Walk from the longest prefix without wildcards.
		root, static := staticPrefix(segs, strings.HasPrefix(pat, "/"))
		rootPath := resolve(base, root)
		if static == len(segs) {
			st, err := os.Stat(rootPath)
			if errors.Is(err, fs.ErrNotExist) {
				continue // reported as "matched nothing" by the caller
			}
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", pat, err)
			}
			if !st.IsDir() {
				add(filepath.FromSlash(pat))
				continue
			}
			segs = append(segs, "**") // a directory means everything under it
		}
		err := filepath.WalkDir(rootPath, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == rootPath {
					return filepath.SkipAll
				}
				return err
			}
			if !isFile(p, d) {
				return nil
			}
			rel, err := filepath.Rel(rootPath, p)
			if err != nil {
				return err
			}
			name := root
			if rel != "." {
				name = path.Join(root, filepath.ToSlash(rel))
			}
			if matchSegments(segs, strings.Split(strings.TrimPrefix(name, "/"), "/"), strings.HasPrefix(name, "/")) {
				add(filepath.FromSlash(name))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", pat, err)
		}
	}
	sort.Strings(out)
	return out, nil
}

// matchSegments matches path segments against pattern segments; "**"
// matches zero or more segments.
func matchSegments(pat, name []string, abs bool) bool {
	if abs && len(pat) > 0 && pat[0] == "" {
		pat = pat[1:] // the empty segment before the leading slash
	}
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchSegments(pat[1:], name[i:], false) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// staticPrefix is the longest run of leading segments without wildcards,
// joined, and how many segments it is.
func staticPrefix(segs []string, absolute bool) (string, int) {
	static := 0
	for static < len(segs) && !hasMeta(segs[static]) {
		static++
	}
	root := strings.Join(segs[:static], "/")
	if absolute && root == "" {
		root = "/"
	}
	return root, static
}

// matchedPath is a file a pattern matched, with the absolute path of the
// directory (or file) the pattern's walk starts from.
type matchedPath struct {
	path string
	root string
}

// walkCovers reports whether the pattern's walk passes through abs: abs
// is its start or lies under it.
func (m matchedPath) walkCovers(abs string) bool {
	return abs == m.root || strings.HasPrefix(abs, m.root+string(filepath.Separator)) || m.root == string(filepath.Separator)
}

// expandEach is Expand pattern by pattern: each pattern must match a file
// unless allowEmpty (a path that is not there is a mistake to report, not
// a pattern to skip because another one matched), and dir must exist.
func expandEach(dir string, patterns []string, allowEmpty bool) ([]matchedPath, error) {
	if dir != "" {
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("dir %q does not exist", dir)
		case err != nil:
			return nil, fmt.Errorf("dir %q: %w", dir, err)
		case !st.IsDir():
			return nil, fmt.Errorf("dir %q is not a directory", dir)
		}
	}
	seen := map[string]bool{}
	var out []matchedPath
	for _, pat := range patterns {
		paths, err := Expand(dir, []string{pat})
		if err != nil {
			return nil, err
		}
		if len(paths) == 0 && !allowEmpty {
			return nil, noMatch(dir, []string{pat})
		}
		clean := filepath.ToSlash(filepath.Clean(pat))
		if clean == "." {
			clean = ""
		}
		prefix, _ := staticPrefix(strings.Split(clean, "/"), strings.HasPrefix(clean, "/"))
		root, err := filepath.Abs(resolve(dir, prefix))
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if !seen[p] {
				seen[p] = true
				out = append(out, matchedPath{path: p, root: root})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func hasMeta(seg string) bool { return strings.ContainsAny(seg, `*?[\`) }

// isFile reports regular files, following symlinks to them.
func isFile(p string, d fs.DirEntry) bool {
	if d.Type().IsRegular() {
		return true
	}
	if d.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(p)
		return err == nil && st.Mode().IsRegular()
	}
	return false
}

// resolve joins a slash path to base unless it is absolute.
func resolve(base, p string) string {
	p = filepath.FromSlash(p)
	if filepath.IsAbs(p) || base == "" {
		if p == "" {
			return "."
		}
		return p
	}
	return filepath.Join(base, p)
}
