package host

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginLocatorFind(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	l := PluginLocator{Dirs: []string{a, b}}
	if err := os.WriteFile(filepath.Join(a, BinaryPrefix+"copied"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b, BinaryPrefix+"ok"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want, wantErr string
	}{
		{"ok", filepath.Join(b, BinaryPrefix+"ok"), ""},
		{"copied", "", "is there but not executable; make it so (chmod +x " + filepath.Join(a, BinaryPrefix+"copied") + ")"},
		{"missing", "", "no executable modpipe-plugin-missing in any of:\n  " + filepath.Join(a, BinaryPrefix+"missing")},
		{"okk", "", "Did you mean \"ok\"?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Find(tt.name)
			if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Find(%q) = %q, %v; want %q, an error containing %q", tt.name, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
