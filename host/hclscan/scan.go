// Package hclscan finds the top-level blocks of an HCL native-syntax file
// without parsing it. hclsyntax's lexer and parser take ~50 ms for a file
// of 1,000 modules on a small machine; what the host needs to know ahead
// of the load (which plugins to start, where the file can be cut into
// pieces) only takes the block headers and where each block ends, which a
// single pass over the bytes finds in a fraction of that.
//
// The scan follows everything that can hide a brace: comments, quoted
// strings with their ${ } and %{ } sequences, and heredocs. It is not a
// validator: a file it accepts may still fail to parse, and callers use
// what it finds as a guess or check it against the parser's own result.
package hclscan

import (
	"bytes"

	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Block is a top-level block of a file.
type Block struct {
	// Type is the block's type: "module", "plugin", ...
	Type string
	// Labels are the block's labels. A quoted label that holds an
	// escape or a template sequence is not read; Complex is set instead.
	Labels []string
	// Complex says a label could not be read as plain text.
	Complex bool
	// Start and End are the byte range of the block, from its type to
	// just after its closing brace.
	Start, End int
	// Line is the line the block starts on, from 1.
	Line int
}

// Blocks returns the top-level blocks of src in order. ok is false when
// src does not scan as balanced HCL (an unclosed brace, string, comment or
// heredoc, a stray closing bracket, or a top-level item that is neither a
// block nor an attribute): the caller then knows nothing about the file.
func Blocks(src []byte) (blocks []Block, ok bool) {
	s := &scanner{src: src}
	// A block's line is counted from the bytes before it, not while
	// scanning: where the scan reads a construct differently from the
	// parser (a heredoc marker inside its own interpolation), it can get
	// back in step at a later block, and that block's line must then be
	// right too.
	line, counted := 1, 0
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		s.i = 3 // a UTF-8 byte order mark, which the parser skips too
	}
	for {
		s.skipSpace(true)
		if s.i > len(src) {
			return nil, false // an unclosed comment
		}
		if s.i == len(src) {
			return blocks, true
		}
		start := s.i
		name := s.ident()
		if name == "" {
			return nil, false
		}
		s.skipSpace(false)
		if s.peek() == '=' && s.peekAt(1) != '=' {
			// An attribute: its expression ends at the first newline
			// outside brackets.
			s.i++
			if !s.skipUntil(0) {
				return nil, false
			}
			continue
		}
		line += bytes.Count(src[counted:start], []byte{'\n'})
		counted = start
		b := Block{Type: name, Start: start, Line: line}
		for {
			s.skipSpace(false)
			switch c := s.peek(); {
			case c == '{':
				s.i++
				if !s.skipUntil('}') {
					return nil, false
				}
				b.End = s.i
				blocks = append(blocks, b)
			case c == '"':
				label, plain := s.label()
				if label == nil {
					return nil, false
				}
				if !plain {
					b.Complex = true
				}
				b.Labels = append(b.Labels, string(label))
				continue
			case isIdentStart(c):
				b.Labels = append(b.Labels, s.ident())
				continue
			default:
				return nil, false
			}
			break
		}
	}
}

type scanner struct {
	src []byte
	i   int
}

func (s *scanner) peek() byte { return s.peekAt(0) }

func (s *scanner) peekAt(n int) byte {
	if s.i+n < len(s.src) {
		return s.src[s.i+n]
	}
	return 0
}

// skipSpace skips blanks and comments; newlines too when lines is set. A
// line comment's newline is left for the caller when lines is not set.
func (s *scanner) skipSpace(lines bool) {
	for s.i < len(s.src) {
		switch c := s.src[s.i]; {
		case c == ' ' || c == '\t' || c == '\r':
			s.i++
		case c == '\n':
			if !lines {
				return
			}
			s.i++
		case c == '#' || (c == '/' && s.peekAt(1) == '/'):
			for s.i < len(s.src) && s.src[s.i] != '\n' {
				s.i++
			}
		case c == '/' && s.peekAt(1) == '*':
			if !s.blockComment() {
				s.i = len(s.src) + 1 // unclosed: nothing more to scan
				return
			}
		default:
			return
		}
	}
}

// blockComment skips a /* */ comment.
func (s *scanner) blockComment() bool {
	end := bytes.Index(s.src[s.i+2:], []byte("*/"))
	if end < 0 {
		return false
	}
	s.i += 2 + end + 2
	return true
}

func isIdentStart(c byte) bool {
	return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') || c >= 0x80
}

func isIdentByte(c byte) bool {
	return isIdentStart(c) || c == '-' || (c >= '0' && c <= '9')
}

// ident reads an identifier, or returns "" when there is none.
func (s *scanner) ident() string {
	if s.i >= len(s.src) || !isIdentStart(s.src[s.i]) {
		return ""
	}
	start := s.i
	for s.i < len(s.src) && isIdentByte(s.src[s.i]) {
		s.i++
	}
	return string(s.src[start:s.i])
}

// label reads a quoted block label. plain is false when it holds an
// escape or a template sequence, which only the parser can read; label is
// nil when the string does not close on its line.
func (s *scanner) label() (label []byte, plain bool) {
	start := s.i + 1
	plain = true
	for j := start; j < len(s.src); j++ {
		switch s.src[j] {
		case '"':
			s.i = j + 1
			return s.src[start:j], plain
		case '\\':
			plain = false
			j++
		case '$', '%':
			if j+1 < len(s.src) && s.src[j+1] == '{' {
				// The parser reads it; here it only has to end.
				s.i = j
				if !s.quoted() {
					return nil, false
				}
				return []byte{}, false
			}
		case '\n':
			return nil, false
		}
	}
	return nil, false
}

// skipUntil skips tokens until the closing byte close at this nesting
// level (which it consumes), or, with close 0, until the newline that
// ends an attribute (which it leaves). It reports false when the input
// ends first or brackets do not match.
func (s *scanner) skipUntil(close byte) bool {
	for s.i < len(s.src) {
		c := s.src[s.i]
		switch {
		case c == close && close != 0:
			s.i++
			return true
		case c == '\n':
			if close == 0 {
				return true
			}
			s.i++
		case c == '{':
			s.i++
			if !s.skipUntil('}') {
				return false
			}
		case c == '[':
			s.i++
			if !s.skipUntil(']') {
				return false
			}
		case c == '(':
			s.i++
			if !s.skipUntil(')') {
				return false
			}
		case c == '}' || c == ']' || c == ')':
			return false
		case c == '"':
			if !s.quoted() {
				return false
			}
		case c == '<' && s.peekAt(1) == '<':
			if !s.heredoc() {
				return false
			}
		case c == '#' || (c == '/' && (s.peekAt(1) == '/' || s.peekAt(1) == '*')):
			s.skipSpace(false)
			if s.i > len(s.src) {
				return false
			}
		default:
			s.i++
		}
	}
	// The input ends: that ends an attribute, and nothing else.
	return close == 0
}

// quoted skips a quoted template from its opening quote through its
// closing one, with the expressions of its ${ } and %{ } sequences.
func (s *scanner) quoted() bool {
	if s.src[s.i] == '"' {
		s.i++
	}
	for s.i < len(s.src) {
		switch c := s.src[s.i]; c {
		case '"':
			s.i++
			return true
		case '\\':
			s.i += 2
		case '\n':
			return false // quoted strings end on their line
		case '$', '%':
			if s.peekAt(1) == c && s.peekAt(2) == '{' {
				s.i += 3 // $${ and %%{ are literal text
				continue
			}
			if s.peekAt(1) != '{' {
				s.i++
				continue
			}
			s.i += 2
			if !s.skipUntil('}') {
				return false
			}
		default:
			s.i++
		}
	}
	return false
}

// heredoc skips a heredoc from its << through its closing marker's line.
// Its ${ } and %{ } sequences are skipped whole, as in a quoted string:
// one may span lines, and a line of it that reads like the marker does
// not end the heredoc.
func (s *scanner) heredoc() bool {
	j := s.i + 2
	if j < len(s.src) && s.src[j] == '-' {
		j++
	}
	s.i = j
	marker := s.ident()
	if marker == "" {
		return false
	}
	nl := bytes.IndexByte(s.src[s.i:], '\n')
	if nl < 0 || len(bytes.TrimSpace(s.src[s.i:s.i+nl])) != 0 {
		return false
	}
	s.i += nl + 1
	lineStart := true
	for s.i < len(s.src) {
		if lineStart {
			lineEnd := len(s.src)
			if end := bytes.IndexByte(s.src[s.i:], '\n'); end >= 0 {
				lineEnd = s.i + end
			}
			if string(bytes.TrimSpace(s.src[s.i:lineEnd])) == marker {
				s.i = lineEnd // the newline ends the attribute
				return true
			}
			lineStart = false
		}
		switch c := s.src[s.i]; c {
		case '\n':
			s.i++
			lineStart = true
		case '$', '%':
			switch {
			case s.peekAt(1) == c && s.peekAt(2) == '{':
				s.i += 3 // $${ and %%{ are literal text
			case s.peekAt(1) == '{':
				s.i += 2
				if !s.skipUntil('}') {
					return false
				}
			default:
				s.i++
			}
		default:
			s.i++
		}
	}
	return false
}

// ValidIdentifier is hclsyntax.ValidIdentifier without running the lexer
// for the common case: a name of ASCII letters, digits, underscores and
// dashes is decided here, anything else by hclsyntax. The lexer took
// 3 ms per 1,000 modules (two names each) of a file's load.
func ValidIdentifier(s string) bool {
	ascii := s != "" && !(s[0] >= '0' && s[0] <= '9') && s[0] != '-'
	for i := 0; ascii && i < len(s); i++ {
		c := s[i]
		ascii = c < 0x80 && isIdentByte(c)
	}
	if ascii {
		return true
	}
	return hclsyntax.ValidIdentifier(s)
}
