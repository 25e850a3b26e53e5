// Package atonce runs independent per-item work of the host's load on
// every CPU: the file's pieces, the module checks. The run waits for that
// work, and it reads shared data only, writing each item's result to its
// own slot.
package atonce

import (
	"sync"
	"sync/atomic"
)

// Each calls fn(i) for every i in [0, n) from up to workers goroutines,
// the caller's among them, each taking the next i not yet taken (items
// may differ in cost), and returns when every call has. With fewer than
// two workers it calls fn in order on the caller's goroutine.
func Each(n, workers int, fn func(i int)) {
	workers = min(workers, n)
	if workers < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	work := func() {
		for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
			fn(i)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
