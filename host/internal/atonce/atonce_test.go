package atonce

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// TestEachCallsEveryItemOnce: every index once, whatever the number of
// workers, more workers than items included.
func TestEachCallsEveryItemOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {5, 1}, {5, 0}, {100, 2}, {100, 3}, {3, 8}, {1000, 16}} {
		t.Run(fmt.Sprintf("%d items, %d workers", tc.n, tc.workers), func(t *testing.T) {
			calls := make([]atomic.Int32, tc.n)
			Each(tc.n, tc.workers, func(i int) { calls[i].Add(1) })
			for i := range calls {
				if got := calls[i].Load(); got != 1 {
					t.Errorf("item %d called %d times, want once", i, got)
				}
			}
		})
	}
}
