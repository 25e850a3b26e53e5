package host

import (
	"strings"
	"testing"
)

func TestInvalidFileErrorMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  invalidFileError
		want string
	}{
		{"placed", invalidFileError{file: "p.hcl", errs: []placedError{{File: "p.hcl", Line: 3, Column: 5, Summary: "Unsupported argument", Detail: "An argument named \"x\" is not expected here."}}},
			"p.hcl: 1 error in the pipeline file:\n  p.hcl:3:5: Unsupported argument: An argument named \"x\" is not expected here."},
		{"placed, a detail on several lines", invalidFileError{file: "p.hcl", errs: []placedError{{File: "p.hcl", Line: 1, Column: 1, Summary: "Plugin did not start", Detail: "start plugin \"x\": its stderr ends with:\n    cannot start"}}},
			"p.hcl: 1 error in the pipeline file:\n  p.hcl:1:1: Plugin did not start: start plugin \"x\": its stderr ends with: cannot start"},
		{"placed, a long detail", invalidFileError{file: "p.hcl", errs: []placedError{{File: "p.hcl", Line: 1, Column: 1, Summary: "S", Detail: strings.Repeat("é", 500)}}},
			"p.hcl: 1 error in the pipeline file:\n  p.hcl:1:1: S: " + strings.Repeat("é", 399) + "…"},
		{"no place: the detail says what", invalidFileError{file: "p.hcl", errs: []placedError{{Summary: "Value for undeclared variable", Detail: "--var nope was given, but p.hcl declares no variable \"nope\"."}}},
			"p.hcl: 1 error in the pipeline file:\n  Value for undeclared variable: --var nope was given, but p.hcl declares no variable \"nope\"."},
		{"the selection", invalidFileError{file: "p.hcl", selection: true, errs: []placedError{{Summary: "Unknown module in --only", Detail: "There is no module \"x\" in p.hcl."}, {Summary: "Unknown module in --skip"}}},
			"p.hcl: 2 errors in the modules chosen with --only, --skip or --category:\n  Unknown module in --only: There is no module \"x\" in p.hcl.\n  Unknown module in --skip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
