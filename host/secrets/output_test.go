package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// A logger's lines are masked once the Masker is set, in both of hclog's
// formats, however the format escapes the secret.
func TestOutputMasksLogLines(t *testing.T) {
	secrets := []string{"hunter2", `tok "quoted" \ back`, "two\nlines", "naïve-ünï"}
	for _, asJSON := range []bool{false, true} {
		name := "text"
		if asJSON {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			out := NewOutput(&buf)
			log := hclog.New(&hclog.LoggerOptions{Name: "host", Output: out, JSONFormat: asJSON, Level: hclog.Debug})
			log.Info("before", "value", "hunter2")
			if !strings.Contains(buf.String(), "hunter2") {
				t.Fatalf("masked before any Masker was set:\n%s", buf.String())
			}
			buf.Reset()
			out.SetMasker(New(secrets...))
			for _, s := range secrets {
				log.Info("cloning "+s, "url", "https://x:"+s+"@example.com", "raw", s)
				log.Named("plugin.git").Warn("denied", "error", "token "+s+" refused")
			}
			got := buf.String()
			for _, s := range secrets {
				for _, form := range []string{s, strings.Trim(quote(s), `"`)} {
					if strings.Contains(got, form) {
						t.Errorf("the log shows %q:\n%s", form, got)
					}
				}
			}
			if !strings.Contains(got, "***") {
				t.Errorf("nothing masked:\n%s", got)
			}
			out.SetMasker(nil)
			buf.Reset()
			log.Info("after", "value", "hunter2")
			if !strings.Contains(buf.String(), "hunter2") {
				t.Errorf("still masking after SetMasker(nil):\n%s", buf.String())
			}
		})
	}
}

func quote(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	return `"` + b.String() + `"`
}

// Writes from many goroutines while the Masker changes: every line comes
// out whole and masked once a Masker is set (go test -race). A file
// takes concurrent writes whole, as a terminal's stderr does.
func TestOutputConcurrent(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := NewOutput(f)
	out.SetMasker(New("s3cret"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				_, _ = out.Write([]byte("key=s3cret\n"))
				out.SetMasker(New("s3cret"))
			}
		}()
	}
	wg.Wait()
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if got := string(raw); strings.Contains(got, "s3cret") || strings.Count(got, "key=***\n") != 800 {
		t.Fatalf("want 800 masked lines, got %d; secret shown: %v", strings.Count(got, "key=***\n"), strings.Contains(got, "s3cret"))
	}
}
