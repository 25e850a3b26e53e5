package host

import (
	"strings"
	"testing"
)

func TestResolveRole(t *testing.T) {
	flags := func(instance, total int, runID string) RoleFlags {
		return RoleFlags{Instance: &instance, Total: &total, RunID: runID}
	}
	one := 1
	tests := []struct {
		name    string
		flags   RoleFlags
		environ []string
		want    Role
		wantErr string
	}{
		{
			name: "nothing set is single-machine mode",
			want: Role{Instance: 0, Total: 1},
		},
		{
			name:    "total 1 is single-machine mode and needs no run id",
			flags:   flags(0, 1, ""),
			environ: []string{"MODPIPE_INSTANCE=3", "MODPIPE_TOTAL=4"},
			want:    Role{Instance: 0, Total: 1, Source: "--instance/--total"},
		},
		{
			name:    "flags win over the environment",
			flags:   flags(2, 3, "run-7"),
			environ: []string{"MODPIPE_INSTANCE=1", "MODPIPE_TOTAL=9", "MODPIPE_RUN_ID=env-run", "CI_NODE_INDEX=1", "CI_NODE_TOTAL=2"},
			want:    Role{Instance: 2, Total: 3, RunID: "run-7", Source: "--instance/--total"},
		},
		{
			name:    "MODPIPE_ variables win over the CI",
			flags:   RoleFlags{},
			environ: []string{"MODPIPE_INSTANCE=1", "MODPIPE_TOTAL=3", "MODPIPE_RUN_ID=env-run", "CI_NODE_INDEX=1", "CI_NODE_TOTAL=2", "CI_PIPELINE_ID=99"},
			want:    Role{Instance: 1, Total: 3, RunID: "env-run", Source: "MODPIPE_INSTANCE/MODPIPE_TOTAL"},
		},
		{
			name:    "GitLab counts from 1",
			flags:   RoleFlags{},
			environ: []string{"CI_NODE_INDEX=1", "CI_NODE_TOTAL=3", "CI_PIPELINE_ID=4711"},
			want:    Role{Instance: 0, Total: 3, RunID: "4711", Source: "GitLab CI"},
		},
		{
			name:    "GitLab last job",
			flags:   RoleFlags{},
			environ: []string{"CI_NODE_INDEX=3", "CI_NODE_TOTAL=3", "CI_PIPELINE_ID=4711"},
			want:    Role{Instance: 2, Total: 3, RunID: "4711", Source: "GitLab CI"},
		},
		{
			name:    "Buildkite",
			flags:   RoleFlags{},
			environ: []string{"BUILDKITE_PARALLEL_JOB=2", "BUILDKITE_PARALLEL_JOB_COUNT=4", "BUILDKITE_BUILD_ID=0190-abcd"},
			want:    Role{Instance: 2, Total: 4, RunID: "0190-abcd", Source: "Buildkite"},
		},
		{
			name:    "CircleCI",
			flags:   RoleFlags{},
			environ: []string{"CIRCLE_NODE_INDEX=0", "CIRCLE_NODE_TOTAL=2", "CIRCLE_WORKFLOW_ID=wf-1"},
			want:    Role{Instance: 0, Total: 2, RunID: "wf-1", Source: "CircleCI"},
		},
		{
			name:    "GitHub Actions run id and attempt with the job index passed in",
			flags:   flags(1, 2, ""),
			environ: []string{"GITHUB_RUN_ID=123", "GITHUB_RUN_ATTEMPT=2"},
			want:    Role{Instance: 1, Total: 2, RunID: "123-2", Source: "--instance/--total"},
		},
		{
			name:    "distributed without a run id",
			flags:   flags(1, 3, ""),
			wantErr: "instance 1 of 3 (from --instance/--total) has no run id",
		},
		{
			name:    "instance without total",
			flags:   RoleFlags{Instance: &one},
			wantErr: "--instance and --total go together",
		},
		{
			name:    "instance out of range",
			flags:   flags(3, 3, "r"),
			wantErr: "instance 3 is out of range for a run of 3 instances",
		},
		{
			name:    "only one MODPIPE_ variable",
			flags:   RoleFlags{},
			environ: []string{"MODPIPE_INSTANCE=1"},
			wantErr: "MODPIPE_INSTANCE is set but MODPIPE_TOTAL is not",
		},
		{
			name:    "not a number",
			flags:   RoleFlags{},
			environ: []string{"MODPIPE_INSTANCE=one", "MODPIPE_TOTAL=2", "MODPIPE_RUN_ID=r"},
			wantErr: `MODPIPE_INSTANCE="one" is not a whole number`,
		},
		{
			name:    "GitLab index 0 is invalid",
			flags:   RoleFlags{},
			environ: []string{"CI_NODE_INDEX=0", "CI_NODE_TOTAL=2", "CI_PIPELINE_ID=1"},
			wantErr: "CI_NODE_INDEX=0: it counts from 1",
		},
		{
			name:    "a run id with a slash",
			flags:   flags(0, 2, "feature/x"),
			wantErr: `contains '/'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveRole(tt.flags, tt.environ)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if ExitCode(err) != ExitInvalid {
					t.Errorf("exit code %d, want %d", ExitCode(err), ExitInvalid)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolveRole: %v", err)
			}
			if got != tt.want {
				t.Errorf("role = %+v, want %+v", got, tt.want)
			}
			if got.Distributed() != (tt.want.Total > 1) {
				t.Errorf("Distributed() = %v", got.Distributed())
			}
		})
	}
}
