package config

import (
	"bytes"
	"runtime"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modpipe/modpipe/host/hclscan"
	"github.com/modpipe/modpipe/host/internal/atonce"
)

// piecewiseMinBytes is the smallest file parsed in pieces: below it one
// goroutine is done before more would have started.
const piecewiseMinBytes = 32 << 10

// pieceBytes is about the size of a piece. Small pieces parse faster even
// one after the other: hclsyntax appends every token of what it parses to
// one slice, and a large file's slice is copied again at each doubling
// (two thirds of the parse's allocations); a few KiB's stays in the
// cache. A 105 KB file of 1,000 modules: 46 ms whole, 44 in 2 pieces, 33
// in 32 or more, on one core.
const pieceBytes = 4 << 10

// parseFile parses src as hclsyntax.ParseConfig does. A large file is cut
// at top-level blocks into pieces of about pieceBytes, parsed on every
// CPU: the parse is most of a large file's load (~45 ms of CPU per 100 KB
// here), and the run cannot start before it ends. The pieces' bodies are
// merged into the first one's, so the file is the one a single parse
// gives, navigation included. Whenever a piece does not parse cleanly, or
// two pieces set the same top-level attribute, the file is parsed again
// whole, so errors are the single parse's own.
func parseFile(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	if len(src) < piecewiseMinBytes {
		return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	return parsePieces(src, filename, len(src)/pieceBytes, runtime.GOMAXPROCS(0))
}

// parsePieces is parseFile in at most n pieces, parsed by up to workers
// goroutines.
func parsePieces(src []byte, filename string, n, workers int) (*hcl.File, hcl.Diagnostics) {
	whole := func() (*hcl.File, hcl.Diagnostics) { return hclsyntax.ParseConfig(src, filename, hcl.InitialPos) }
	starts := cuts(src, n)
	if len(starts) < 2 {
		return whole()
	}
	files := make([]*hcl.File, len(starts))
	failed := make([]bool, len(starts))
	parse := func(i int) {
		at, end := starts[i], len(src)
		if i+1 < len(starts) {
			end = starts[i+1].Byte
		}
		f, diags := hclsyntax.ParseConfig(src[at.Byte:end], filename, at)
		files[i], failed[i] = f, len(diags) > 0
	}
	atonce.Each(len(starts), workers, parse)
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

// byteOrderMark is U+FEFF in UTF-8.
var byteOrderMark = []byte("\ufeff")

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
		// Nor where a byte order mark starts the line: hclsyntax drops
		// one at the start of what it parses, so the piece would parse
		// where the whole file has an invalid character.
		if bytes.HasPrefix(src[b.Start:], byteOrderMark) {
			continue
		}
		starts = append(starts, hcl.Pos{Line: b.Line, Column: 1, Byte: b.Start})
		next++
	}
	return starts
}
