package pluginhost_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/host/pluginhost"
)

// BenchmarkStart measures starting a plugin process through the handshake
// and Describe, then stopping it.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	spec := pluginhost.Spec{Name: "hello", Path: helloBin}
	opts := pluginhost.Options{Logger: hclog.NewNullLogger()}
	for b.Loop() {
		p, err := pluginhost.Start(ctx, spec, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Close()
		b.StartTimer()
	}
}

// BenchmarkExecuteRoundTrip measures one Execute of a trivial module on a
// running plugin: request, one log line, result.
func BenchmarkExecuteRoundTrip(b *testing.B) {
	ctx := context.Background()
	p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "hello", Path: helloBin}, pluginhost.Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := pluginhost.Request{Module: "greet", Config: json.RawMessage(`{"name":"bench"}`)}
	for b.Loop() {
		resp, err := p.Execute(ctx, req, func(pluginhost.Line) {})
		if err != nil || !resp.Succeeded {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkExecuteParallel is the round trip with concurrent callers on one
// process, as the scheduler drives it.
func BenchmarkExecuteParallel(b *testing.B) {
	ctx := context.Background()
	p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "hello", Path: helloBin}, pluginhost.Options{Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	req := pluginhost.Request{Module: "greet", Config: json.RawMessage(`{"name":"bench"}`)}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := p.Execute(ctx, req, nil)
			if err != nil || !resp.Succeeded {
				b.Error(resp, err)
				return
			}
		}
	})
}
