package sdk

import (
	"context"
	"testing"
)

// BenchmarkDecodeConfig decodes a shell-like config, as the sdk does for
// every module it runs.
func BenchmarkDecodeConfig(b *testing.B) {
	type cfg struct {
		Command    []string          `modpipe:"command,optional"`
		Script     string            `modpipe:"script,optional"`
		Env        map[string]string `modpipe:"env,optional"`
		Dir        string            `modpipe:"dir,optional"`
		StdoutJSON bool              `modpipe:"stdout_json,optional"`
	}
	k := NewKind("exec", "bench.exec/v1", func(context.Context, *Module, cfg) (struct{}, error) { return struct{}{}, nil }).def()
	for b.Loop() {
		if _, errs := k.decodeConfig(`{"command":["/bin/true"]}`); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
