package secrets

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestString(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		in     string
		want   string
	}{
		{name: "nothing to mask", values: nil, in: "token=abc", want: "token=abc"},
		{name: "one value", values: []string{"abc"}, in: "token=abc and abc", want: "token=*** and ***"},
		{name: "longest first", values: []string{"pass", "password123"}, in: "pw=password123 p=pass", want: "pw=*** p=***"},
		{name: "longest first regardless of order given", values: []string{"password123", "pass"}, in: "password123", want: "***"},
		{name: "overlapping prefix", values: []string{"abc", "abcdef"}, in: "abcdefabc", want: "******"},
		{name: "blank values ignored", values: []string{"", "  ", "x1y2"}, in: "a  b x1y2", want: "a  b ***"},
		{name: "multi-line value masked per line", values: []string{"line-one\nline-two"}, in: "got line-two here", want: "got *** here"},
		{name: "multi-line value masked whole", values: []string{"line-one\nline-two"}, in: "x line-one\nline-two y", want: "x *** y"},
		{name: "unicode", values: []string{"sécret"}, in: "le sécret est là", want: "le *** est là"},
		{name: "quoted by %q", values: []string{`a"b\c`}, in: `stat "/x/a\"b\\c": no such file`, want: `stat "/x/***": no such file`},
		{name: "quoted by hclog", values: []string{`pa"ss\w0rd`}, in: `kv: secret="pa\"ss\w0rd"`, want: `kv: secret="***"`},
		{name: "quoted by JSON", values: []string{"t<o>k&n"}, in: `{"p":"t\u003co\u003ek\u0026n"}`, want: `{"p":"***"}`},
		{name: "multi-line value quoted", values: []string{"l1\nl2"}, in: `value "l1\nl2"`, want: `value "***"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.values...).String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNilMasker(t *testing.T) {
	var m *Masker
	if !m.Empty() || m.String("x") != "x" || m.Values() != nil {
		t.Fatal("a nil Masker must mask nothing")
	}
	if got := string(m.JSON(json.RawMessage(`{"a":1}`))); got != `{"a":1}` {
		t.Fatalf("JSON = %s", got)
	}
}

func TestValuesLongestFirst(t *testing.T) {
	got := New("bb", "a", "ccc", "bb").Values()
	want := []string{"ccc", "bb", "a"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Values() = %q, want %q", got, want)
	}
}

func TestJSON(t *testing.T) {
	m := New(`s3"cr\et`, "hunter2", "4242")
	tests := []struct {
		name, in, want string
	}{
		{name: "string value", in: `{"stdout":"pw is hunter2"}`, want: `{"stdout":"pw is ***"}`},
		{name: "escaped secret", in: `{"v":"x s3\"cr\\et y"}`, want: `{"v":"x *** y"}`},
		{name: "nested and keys", in: `{"hunter2":[1,{"a":"hunter2"}]}`, want: `{"***":[1,{"a":"***"}]}`},
		{name: "number", in: `{"pin":4242,"n":5}`, want: `{"n":5,"pin":"***"}`},
		{name: "unchanged kept byte for byte", in: `{"b": 1, "a": 2}`, want: `{"b": 1, "a": 2}`},
		{name: "not JSON masked as text", in: `hunter2 {`, want: `*** {`},
		{name: "null", in: `null`, want: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(m.JSON(json.RawMessage(tt.in)))
			if got != tt.want {
				t.Errorf("JSON(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestCtyValues(t *testing.T) {
	v := cty.ObjectVal(map[string]cty.Value{
		"user":  cty.StringVal("admin"),
		"port":  cty.NumberIntVal(5432),
		"ratio": cty.NumberFloatVal(1.5),
		"tls":   cty.True,
		"keys":  cty.ListVal([]cty.Value{cty.StringVal("k1"), cty.StringVal("k2")}),
		"none":  cty.NullVal(cty.String),
		"later": cty.UnknownVal(cty.String),
	})
	got := CtyValues(v.Mark("sensitive"))
	want := map[string]bool{"admin": true, "5432": true, "1.5": true, "k1": true, "k2": true}
	if len(got) != len(want) {
		t.Fatalf("CtyValues = %q, want the %d values %v", got, len(want), want)
	}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected value %q", g)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var out bytes.Buffer
	w := NewLineWriter(&out, New("secret"))
	// The secret arrives in pieces and across writes.
	for _, chunk := range []string{"a sec", "ret here\nand sec", "ret\ntail sec"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out.String(), "a *** here\nand ***\n"; got != want {
		t.Fatalf("before Flush: %q, want %q", got, want)
	}
	if n := w.Buffered(); n != len("tail sec") {
		t.Fatalf("Buffered() = %d with %q held", n, "tail sec")
	}
	if _, err := w.Write([]byte("ret")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "a *** here\nand ***\ntail ***"; got != want {
		t.Fatalf("after Flush: %q, want %q", got, want)
	}
	if n := w.Buffered(); n != 0 {
		t.Fatalf("Buffered() = %d after Flush", n)
	}
}

// MayStartIn says whether prefix followed by text masked already may
// hold a secret the text alone does not: one inside prefix, or one that
// starts in it and goes on into the text.
func TestMayStartIn(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		prefix string
		want   bool
	}{
		{"nothing to mask", nil, "build | ", false},
		{"no secret near", []string{"hunter2"}, "build | ", false},
		{"a secret inside", []string{"uild"}, "build | ", true},
		{"starts in it, ends in the text", []string{"| hun"}, "build | ", true},
		{"its whole start is the prefix's end", []string{" hunter2"}, "build |", false},
		{"starts at the prefix's last byte", []string{" hunter2"}, "build | ", true},
		{"empty prefix", []string{"hunter2"}, "", false},
		{"an escaped form", []string{`a"b`}, `x a\"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.values...).MayStartIn(tt.prefix); got != tt.want {
				t.Errorf("MayStartIn(%q) with %q = %v, want %v", tt.prefix, tt.values, got, tt.want)
			}
		})
	}
	// Where it says false, masking the text and then the joined line
	// changes nothing.
	m := New("hunter2", "| hun")
	for _, text := range []string{"hunter2", "x hunter2 y", "| hunter2", "hun", "ter2"} {
		line := "build ! " + m.String(text)
		if m.MayStartIn("build ! ") {
			t.Fatal(`a secret may start in "build ! "`)
		}
		if got := m.String(line); got != line {
			t.Errorf("%q masks again to %q", line, got)
		}
	}
}

func BenchmarkString(b *testing.B) {
	m := New("ghp_0123456789abcdef", "hunter2", "postgres://user:pw@db/x")
	line := strings.Repeat("ordinary build output without anything to hide ", 3)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.String(line)
	}
}

// A line that comes in pieces, masked piece by piece with Piece (each
// rest put in front of the next piece, the last masked with String),
// reads as the whole line masked, wherever the cuts are.
func TestPiece(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		line   string
	}{
		{"no secrets", nil, "hunter2secret END"},
		{"one secret", []string{"hunter2secret"}, "xxxxhunter2secret END"},
		{"secret twice", []string{"hunter2secret"}, "hunter2secrethunter2secret"},
		{"secret inside a longer one", []string{"hunter2", "hunter2secret"}, "a hunter2secret b hunter2 c hunter2secre"},
		{"overlapping secrets", []string{"abcab", "cabx"}, "zabcabxcabx"},
		{"one-byte secret", []string{"e"}, "the end"},
		{"characters of several bytes", []string{"s€cr€t"}, "€€€ s€cr€t €€"},
		{"partial secret at the end", []string{"hunter2secret"}, "xx hunter2secre"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(tt.values...)
			want := m.String(tt.line)
			// Every cut in two and three pieces (between bytes: the
			// masker must not care where the plugin cut).
			for i := 0; i <= len(tt.line); i++ {
				for j := i; j <= len(tt.line); j++ {
					pieces := []string{tt.line[:i], tt.line[i:j], tt.line[j:]}
					var got, rest string
					for _, p := range pieces[:2] {
						var out string
						out, rest = m.Piece(rest + p)
						got += out
					}
					got += m.String(rest + pieces[2])
					if got != want {
						t.Fatalf("pieces %q: masked %q, want %q", pieces, got, want)
					}
				}
			}
		})
	}
}

// Piece holds back no more than it must: a piece with no secret near its
// end is printed almost whole.
func TestPieceHoldsLittle(t *testing.T) {
	m := New("hunter2secret")
	line := strings.Repeat("x", 100)
	out, rest := m.Piece(line)
	if out+rest != line || len(rest) != len("hunter2secret")-1 {
		t.Errorf("Piece kept %d bytes back (%q), want %d", len(rest), rest, len("hunter2secret")-1)
	}
	if out, rest := New().Piece(line); out != line || rest != "" {
		t.Errorf("with nothing to mask, Piece = %q, %q; want the piece whole", out, rest)
	}
}

// A masked document keeps <, > and & as they are: escaped (\u003c) they
// would count six times against a fleet's result size.
func TestJSONMaskNotHTMLEscaped(t *testing.T) {
	got := string(New("hunter2").JSON([]byte(`{"out":"<a href=\"x\">hunter2 & more</a>"}`)))
	want := `{"out":"<a href=\"x\">*** & more</a>"}`
	if got != want {
		t.Fatalf("JSON = %s, want %s", got, want)
	}
}
