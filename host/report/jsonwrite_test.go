package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// encoded is the run as json.Encoder writes it, indented by two spaces:
// what WriteJSON must write.
func encoded(t testing.TB, run *Run) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(run); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// filled sets every field of the struct v points to, recursively, to a
// value that is not its zero value, so a field added to Envelope or Run
// shows up in the encoder's output.
func filled(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		v.SetInt(42)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		filled(v.Elem(), s)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 26, 17, 4, 5, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				filled(v.Field(i), s)
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte(`{"a": [1, 2, {"b": "<c>"}], "d": {}, "e": []}`))
			return
		}
		e := reflect.New(v.Type().Elem()).Elem()
		filled(e, s)
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, 1), e))
	default:
		panic(fmt.Sprintf("filled: no value for %s", v.Type()))
	}
}

func TestWriteJSONIsEncoder(t *testing.T) {
	var full Run
	filled(reflect.ValueOf(&full).Elem(), "x")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	env := func(mod string, value string) coordinator.Envelope {
		e := coordinator.Envelope{Module: mod, Status: coordinator.StatusSucceeded, Type: "shell.exec/v1", Attempts: 1, StartedAt: at, EndedAt: at.Add(time.Second), DurationMS: 1000, Host: "h", Plugin: "shell", PluginVersion: "0.1.0"}
		if value != "" {
			e.Value = json.RawMessage(value)
		}
		return e
	}
	failed := env("f", `null`)
	failed.Status, failed.Error = coordinator.StatusFailed, &coordinator.Error{Message: "exit 1", Kind: coordinator.ErrorKindModule}
	tests := map[string]*Run{
		"every field set": &full,
		"no modules":      {Pipeline: "p", Status: RunInvalid, Modules: []coordinator.Envelope{}, Error: &coordinator.Error{Message: "bad file", Kind: "config"}},
		"nil modules":     {Pipeline: "p"},
		"strings to escape": {Pipeline: "a \"quoted\" <b> & c\\d", RunID: "tab\tnewline\ncontrol\x01\x1f del\x7f", Modules: []coordinator.Envelope{
			env("unicode é 日本 🚀", `"x"`), env("bad utf-8 \xff\xfe", `1`), env("separators \u2028 \u2029", `true`),
		}},
		"values": {Modules: []coordinator.Envelope{
			env("nil", ""), env("null", `null`), env("spaced", " {\n\t\"a\" :  [ 1 , 2 ] ,\"b\":{ }, \"c\" : [ ] }\n "),
			env("html", `{"s": "<script>&amp;\u2028</script>", "t": "\u003c"}`), env("deep", `[[[[{"a":[{}]}]]]]`),
			env("escapes", `"line\nbreak \"q\" \\ \u00e9"`), env("number", `-1.5e300`),
		}},
		"failure and ignored failure": {Modules: []coordinator.Envelope{failed, func() coordinator.Envelope {
			e := env("i", `{}`)
			e.Status, e.IgnoredFailure = coordinator.StatusFailed, true
			e.Error = &coordinator.Error{Message: "m <x>", Kind: "module", Tail: "line 1\nline 2"}
			return e
		}()}},
	}
	for name, run := range tests {
		t.Run(name, func(t *testing.T) {
			var got bytes.Buffer
			if err := WriteJSON(&got, run); err != nil {
				t.Fatal(err)
			}
			if want := encoded(t, run); got.String() != want {
				t.Errorf("WriteJSON wrote\n%s\njson.Encoder writes\n%s", got.String(), want)
			}
		})
	}
	t.Run("nil run", func(t *testing.T) {
		var got bytes.Buffer
		if err := WriteJSON(&got, nil); err != nil || got.String() != encoded(t, nil) {
			t.Errorf("WriteJSON(nil) = %q, %v; want %q", got.String(), err, encoded(t, nil))
		}
	})
}

// TestWriteJSONNestingLimit: a value nested to within the report's own
// depth of encoding/json's limit is written, one level more is refused,
// as the encoder does, and so is one past the limit of JSON itself. The
// value that fits is not compared with the encoder's output: indented,
// 9,997 levels are 200 MB of report, 20 s for the two of them on a quiet
// machine and minutes on a loaded one; shallower values are compared in
// TestWriteJSON and FuzzWriteJSON.
func TestWriteJSONNestingLimit(t *testing.T) {
	for _, tc := range []struct {
		levels int
		fits   bool
	}{{9997, true}, {9998, false}, {10001, false}} {
		value := strings.Repeat("[", tc.levels) + strings.Repeat("]", tc.levels)
		run := &Run{Modules: []coordinator.Envelope{{Module: "m", Value: json.RawMessage(value)}}}
		var got countingWriter
		err := WriteJSON(&got, run)
		if tc.fits {
			if err != nil || got.n < int64(tc.levels)*int64(tc.levels) {
				t.Errorf("%d levels: WriteJSON wrote %d bytes, error %v; want the whole value", tc.levels, got.n, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%d levels: WriteJSON wrote %d bytes; want an error", tc.levels, got.n)
		}
		enc := json.NewEncoder(io.Discard)
		enc.SetIndent("", "  ") // as the report is written, and as encoded does
		if enc.Encode(run) == nil {
			t.Errorf("%d levels: json.Encoder accepts the value; the test's boundary is wrong", tc.levels)
		}
	}
}

// countingWriter counts what is written to it and keeps none of it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// FuzzWriteJSON: for any module name and any valid JSON value, WriteJSON
// writes what json.Encoder writes.
func FuzzWriteJSON(f *testing.F) {
	f.Add("m", []byte(`{"a": [1, "<b>"]}`))
	f.Add("é\u2028\x00", []byte(` "x\u2029" `))
	f.Add("\xff", []byte(`[]`))
	f.Fuzz(func(t *testing.T, mod string, value []byte) {
		if !json.Valid(value) {
			return
		}
		run := &Run{Pipeline: mod, Modules: []coordinator.Envelope{{Module: mod, Value: value, SkipReason: mod}}}
		var got bytes.Buffer
		if err := WriteJSON(&got, run); err != nil {
			t.Fatal(err)
		}
		if want := encoded(t, run); got.String() != want {
			t.Fatalf("WriteJSON wrote\n%s\njson.Encoder writes\n%s", got.String(), want)
		}
	})
}

// BenchmarkWriteJSON writes the report of 1,000 /bin/true modules.
func BenchmarkWriteJSON(b *testing.B) {
	at := time.Now()
	run := &Run{Pipeline: "bench", RunID: "local-1", Status: RunSucceeded, StartedAt: at, EndedAt: at}
	for i := range 1000 {
		run.Modules = append(run.Modules, coordinator.Envelope{Module: fmt.Sprintf("m%d_%d", i/100, i%100), Status: coordinator.StatusSucceeded, Type: "shell.exec/v1",
			Value:    json.RawMessage(`{"exit_code":0,"stdout":"","stdout_truncated":false,"stderr_tail":"","json":null}`),
			Attempts: 1, StartedAt: at, EndedAt: at, Host: "vm", Plugin: "shell", PluginVersion: "0.1.0"})
	}
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		if err := WriteJSON(&out, run); err != nil {
			b.Fatal(err)
		}
	}
}
