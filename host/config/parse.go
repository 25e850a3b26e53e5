package config

import (
	"runtime"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modpipe/modpipe/host/hclscan"
)

// piecewiseMinBytes is the smallest file parsed in pieces: below it one
// goroutine is done before more would have started.
const piecewiseMinBytes = 32 << 10

// parseFile parses src as hclsyntax.ParseConfig does. A large file is cut
// at top-level blocks into a piece per CPU, parsed at once: the parse is
// most of a large file's load (~45 ms of CPU per 100 KB here), and the run
// cannot start before it ends. The pieces' bodies are merged into the
// first one's, so the file is the one a single parse gives, navigation
// included. Whenever a piece does not parse cleanly, or two pieces set the
// same top-level attribute, the file is parsed again whole, so errors are
// the single parse's own.
func parseFile(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	n := runtime.GOMAXPROCS(0)
	if len(src) < piecewiseMinBytes || n < 2 {
		return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	return parsePieces(src, filename, n)
}

// parsePieces is parseFile in at most n pieces.
func parsePieces(src []byte, filename string, n int) (*hcl.File, hcl.Diagnostics) {
	whole := func() (*hcl.File, hcl.Diagnostics) { return hclsyntax.ParseConfig(src, filename, hcl.InitialPos) }
	starts := cuts(src, n)
	if len(starts) < 2 {
		return whole()
	}
	files := make([]*hcl.File, len(starts))
	failed := make([]bool, len(starts))
	var wg sync.WaitGroup
	for i, at := range starts {
		end := len(src)
		if i+1 < len(starts) {
			end = starts[i+1].Byte
		}
		wg.Go(func() {
			f, diags := hclsyntax.ParseConfig(src[at.Byte:end], filename, at)
			files[i], failed[i] = f, len(diags) > 0
		})
	}
	wg.Wait()
	for _, bad := range failed {
		if bad {
			return whole()
		}
	}
	first := files[0]
	body, ok := first.Body.(*hclsyntax.Body)
	if !ok {
		return whole()
	}
	for _, f := range files[1:] {
		b, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			return whole()
		}
		for name, a := range b.Attributes {
			if _, dup := body.Attributes[name]; dup {
				return whole() // the single parse reports it
			}
			body.Attributes[name] = a
		}
		body.Blocks = append(body.Blocks, b.Blocks...)
		body.SrcRange.End = b.SrcRange.End
		body.EndRange = b.EndRange
	}
	first.Bytes = src
	return first, nil
}

// cuts returns where each piece starts: the file's start, and up to n-1
// top-level blocks that begin a line, spread evenly by size. Nothing when
// the file does not scan.
func cuts(src []byte, n int) []hcl.Pos {
	blocks, ok := hclscan.Blocks(src)
	if !ok {
		return nil
	}
	starts := []hcl.Pos{hcl.InitialPos}
	next := 1
	for _, b := range blocks {
		if next == n {
			break
		}
		// Only at the first column: a column is counted in grapheme
		// clusters, which the text before a block on its line would
		// need the parser to count.
		if b.Start < next*len(src)/n || b.Start == 0 || src[b.Start-1] != '\n' {
			continue
		}
		starts = append(starts, hcl.Pos{Line: b.Line, Column: 1, Byte: b.Start})
		next++
	}
	return starts
}
