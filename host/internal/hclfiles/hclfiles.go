// Package hclfiles gathers the repository's .hcl files, for tests that
// check code reading HCL against hclsyntax on every real pipeline file.
package hclfiles

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Under returns the contents of every .hcl file under root, by path,
// skipping version control, tool and build output folders.
func Under(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".tools" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".hcl") {
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files[path] = raw
		}
		return nil
	})
	return files, err
}
