package main

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// liveHeapHeadroom is the least room the soft memory limit leaves above
// the live heap, as a fraction of it. A pipeline whose live heap outgrows
// softMemoryLimit (20,000 modules that read each other's results: 300
// MB and more) had the GC run almost without pause, 69% of the host's
// CPU, the run 2.2-2.6x slower than without the limit. Past that size
// the limit follows the live heap instead, as GOGC=50 would.
const liveHeapHeadroom = 0.5

// memoryLimitCheck is how often the live heap is looked at.
const memoryLimitCheck = 250 * time.Millisecond

// memoryLimitFor is the soft memory limit for a live heap of live bytes:
// base, or more when the live heap needs more room to be collected
// without thrashing.
func memoryLimitFor(base int64, live uint64) int64 {
	return max(base, int64(float64(live)*(1+liveHeapHeadroom)))
}

// followLiveHeap keeps the soft memory limit at memoryLimitFor(base,
// the live heap) until stop is called, checking every memoryLimitCheck.
func followLiveHeap(base int64) (stop func()) {
	debug.SetMemoryLimit(base)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(memoryLimitCheck)
		defer tick.Stop()
		limit := base
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				return // not known to this runtime: keep base
			}
			if l := memoryLimitFor(base, sample[0].Value.Uint64()); l != limit {
				limit = l
				debug.SetMemoryLimit(limit)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
