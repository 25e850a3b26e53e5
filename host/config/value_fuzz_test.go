package config

import (
	"encoding/json"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
)

// FuzzModuleValue feeds arbitrary envelope JSON, as a plugin or a worker
// could send it, to the conversion that makes a result visible to HCL
// expressions (R9.2). It may refuse a value, never panic; and a value it
// accepts must be usable in an expression.
func FuzzModuleValue(f *testing.F) {
	f.Add([]byte(`{"module":"a","status":"succeeded","value":{"sha":"abc","n":[1,2.5,"x",null,{"k":true}]}}`))
	f.Add([]byte(`{"module":"a","status":"failed","value":"\u0000\ud800","error":{"message":"m","kind":"module","tail":"t"}}`))
	f.Add([]byte(`{"module":"a","value":1e400}`))
	f.Add([]byte(`{"module":"a","value":[[[[[[[]]]]]]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var env coordinator.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return
		}
		v, err := ModuleValue(&env)
		if err != nil {
			return
		}
		if !v.Type().IsObjectType() || !v.Type().HasAttribute("value") {
			t.Fatalf("module value is %s", v.Type().FriendlyName())
		}
		_ = MatrixValue(map[string]cty.Value{"k": v})
	})
}
