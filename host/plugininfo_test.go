package host

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/host/schema"
)

// `host plugins` keeps its columns in line whatever the names' length,
// lists an object attribute's fields under it, and the result's fields
// in a few lines (url? may be absent).
func TestWritePluginInfo(t *testing.T) {
	step := cty.ObjectWithOptionalAttrs(map[string]cty.Type{"name": cty.String, "timeout_seconds": cty.Number}, []string{"timeout_seconds"})
	info := pluginhost.Info{Name: "deploy", Version: "1.2.0", ProtocolVersion: 1, Kinds: []schema.Kind{{
		Name: "release", Default: true, ResultType: "deploy.release/v1", Doc: "Releases.",
		Result: cty.ObjectWithOptionalAttrs(map[string]cty.Type{
			"version": cty.String, "url": cty.String, "extra": cty.DynamicPseudoType,
			"steps": cty.List(cty.Object(map[string]cty.Type{"name": cty.String, "ok": cty.Bool, "log_lines": cty.Map(cty.Number)})),
		}, []string{"url"}),
		Attributes: []schema.Attribute{
			{Name: "target", Type: cty.String, Required: true, Doc: "Where to."},
			{Name: "rollback_on_health_failure", Type: cty.Bool, Doc: "Roll back."},
			{Name: "steps", Type: cty.List(step)},
		},
	}}}
	var b strings.Builder
	writePluginInfo(&b, "deploy", "/p/modpipe-plugin-deploy", info)
	want := `plugin deploy 1.2.0 (protocol 1)
  binary: /p/modpipe-plugin-deploy

  module "deploy.release" (default) -> deploy.release/v1
    Releases.
    target                      string          required  Where to.
    rollback_on_health_failure  bool            optional  Roll back.
    steps                       list of object  optional
      name                      string          required
      timeout_seconds           number          optional
    result: extra any, steps list of {log_lines map of number, name string, ok
            bool}, url? string, version string
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A plugin that gives itself another name than the pipeline's is listed
// under the pipeline's, which its modules' kinds are written with.
func TestWritePluginInfoUnderThePipelinesName(t *testing.T) {
	info := pluginhost.Info{Name: "somethingelse", Version: "0.1.0", ProtocolVersion: 1, Kinds: []schema.Kind{{Name: "say", ResultType: "say/v1"}}}
	var b strings.Builder
	writePluginInfo(&b, "nodeqa", "/p/modpipe-plugin-nodeqa", info)
	for _, want := range []string{`plugin nodeqa 0.1.0 (protocol 1) (it calls itself "somethingelse")`, `module "nodeqa.say" -> say/v1`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}
