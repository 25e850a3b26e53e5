package ui

import "testing"

func TestTruncate(t *testing.T) {
	tests := []struct {
		name, in string
		width    int
		want     string
	}{
		{"fits", "build", 10, "build"},
		{"exact", "build", 5, "build"},
		{"cut ascii", "build-everything", 8, "build-e…"},
		{"wide characters count twice", "日本語のモジュール", 7, "日本語…"},
		{"escape sequences take no cells", "\x1b[1mbold\x1b[0m text", 6, "\x1b[1mbold\x1b[0m …"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := truncate(tt.in, tt.width, "…"); got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
		})
	}
}

func TestCursorUp(t *testing.T) {
	for n, want := range map[int]string{1: "\x1b[A", 3: "\x1b[3A", 12: "\x1b[12A"} {
		if got := cursorUp(n); got != want {
			t.Errorf("cursorUp(%d) = %q, want %q", n, got, want)
		}
	}
}
