package coordinator

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEnvelope decodes arbitrary bytes as an envelope, the way a master
// reads what a worker published (R9.2). Whatever decodes must encode
// again and decode to the same envelope: round trips are lossless.
func FuzzEnvelope(f *testing.F) {
	f.Add([]byte(`{"module":"test[linux]","status":"succeeded","type":"go.test/v1","value":{"packages":12,"failed":0},"error":null,"skip_reason":"","attempts":1,"started_at":"2026-11-25T10:00:00Z","ended_at":"2026-11-25T10:00:08Z","duration_ms":8123,"instance":2,"host":"runner-7","plugin":"go","plugin_version":"0.1.0"}`))
	f.Add([]byte(`{"module":"x","status":"failed","error":{"message":"exit status 3","kind":"module","tail":"boom\n"}}`))
	f.Add([]byte(`{"module":"x","status":"skipped","skip_reason":"run_if is false: var.deploy","value":null}`))
	f.Add([]byte(`{"value":"\u00e9\ud83d\ude00","attempts":-1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var env Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return
		}
		out, err := json.Marshal(env)
		if err != nil {
			// Only a value that is not valid JSON can fail here, and
			// Unmarshal never produces one.
			t.Fatalf("re-encode %q: %v", data, err)
		}
		var again Envelope
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("decode own encoding %s: %v", out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the envelope:\n%s\n%s", out, out2)
		}
		_ = env.Status.Valid()
		_ = env.Status.Failed()
	})
}
