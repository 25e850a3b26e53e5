package pluginhost_test

import (
	"strings"
	"testing"

	"github.com/modpipe/modpipe/host/pluginhost"
)

func TestCrashErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  pluginhost.CrashError
		want []string
		not  []string
	}{
		{"alone, with a tail",
			pluginhost.CrashError{Plugin: "p", Path: "/bin/p", Module: "a", Running: []string{"a"}, ExitStatus: "exit status 2", StderrTail: "panic: boom\n\ngoroutine 1"},
			[]string{`plugin "p" (/bin/p) crashed while running module "a": exit status 2: panic: boom`}, []string{"other"}},
		{"with others, a tail",
			pluginhost.CrashError{Plugin: "p", Path: "/bin/p", Module: "a", Running: []string{"a", "b"}, ExitStatus: "exit status 2", StderrTail: "fatal: disk on fire"},
			[]string{`and 1 other ("b"); any of them may have caused it (see the stderr tail): exit status 2`}, nil},
		{"with others, nothing on stderr",
			pluginhost.CrashError{Plugin: "p", Path: "/bin/p", Module: "a", Running: []string{"a", "b", "c"}, ExitStatus: "exit status 7"},
			[]string{`and 2 others ("b", "c"); any of them may have caused it (it wrote nothing to stderr): exit status 7`}, []string{"see the stderr tail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.err.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s\nwant it to contain %s", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%s\nwant it without %q", got, n)
				}
			}
		})
	}
}
