package main

import "testing"

func TestMemoryLimitFor(t *testing.T) {
	const base = 120 << 20
	for _, tc := range []struct {
		live uint64
		want int64
	}{
		{0, base},
		{70 << 20, base}, // 10,000 no-op modules: the limit as measured
		{80 << 20, base},
		{100 << 20, 150 << 20},
		{300 << 20, 450 << 20},
	} {
		if got := memoryLimitFor(base, tc.live); got != tc.want {
			t.Errorf("live heap %d MiB: limit %d MiB, want %d MiB", tc.live>>20, got>>20, tc.want>>20)
		}
	}
}
