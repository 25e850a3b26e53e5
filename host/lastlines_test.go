package host

import (
	"fmt"
	"strings"
	"testing"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{1, "line 1"},
		{lastLinesKept, "line 1 ... line 20"},
		{lastLinesKept + 7, "line 8 ... line 27"},
	} {
		var l lastLines
		for i := 1; i <= tc.n; i++ {
			l.add(fmt.Sprintf("line %d", i))
		}
		got := l.String()
		if lines := strings.Split(got, "\n"); len(lines) > 2 {
			got = lines[0] + " ... " + lines[len(lines)-1]
			if len(lines) != lastLinesKept {
				t.Errorf("%d lines added: %d kept, want %d", tc.n, len(lines), lastLinesKept)
			}
		}
		if got != tc.want {
			t.Errorf("%d lines added: %q, want %q", tc.n, got, tc.want)
		}
	}
}
