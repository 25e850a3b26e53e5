package mailbox

import (
	"context"
	"sync"
	"testing"
)

func TestOrderedAndUnbounded(t *testing.T) {
	m := New[int]()
	// Put must not block even with no reader running.
	for i := range 1000 {
		m.Put(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); m.Run(ctx) }()
	for want := range 1000 {
		if got := <-m.Out(); got != want {
			t.Fatalf("got %d, want %d", got, want)
		}
	}
	m.Put(1000)
	if got := <-m.Out(); got != 1000 {
		t.Fatalf("got %d after drain, want 1000", got)
	}
	cancel()
	wg.Wait()
	if _, ok := <-m.Out(); ok {
		t.Fatalf("Out not closed after Run returned")
	}
}
