package schedule

import "time"

// minHeap is a binary min-heap ordered by less. The scheduler only ever
// pushes, pops the top, or drains, so no index bookkeeping is needed.
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *minHeap[T]) len() int { return len(h.items) }
func (h *minHeap[T]) peek() T  { return h.items[0] }

func (h *minHeap[T]) push(v T) {
	h.items = append(h.items, v)
	for i := len(h.items) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(h.items[i], h.items[p]) {
			break
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *minHeap[T]) pop() T {
	top := h.items[0]
	last := len(h.items) - 1
	h.items[0] = h.items[last]
	var zero T
	h.items[last] = zero
	h.items = h.items[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(h.items[l], h.items[m]) {
			m = l
		}
		if r < last && h.less(h.items[r], h.items[m]) {
			m = r
		}
		if m == i {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
	return top
}

// drain empties the heap and returns its items in no particular order.
func (h *minHeap[T]) drain() []T {
	items := h.items
	h.items = nil
	return items
}

// newTaskHeap returns a heap of node indexes whose top is the task that
// should start first.
func newTaskHeap(nodes []node) *minHeap[int32] {
	return &minHeap[int32]{less: func(a, b int32) bool { return nodes[a].rankPos < nodes[b].rankPos }}
}

// wakeup is a task waiting out its retry backoff.
type wakeup struct {
	at time.Time
	n  int32
}

// newBackoffHeap returns a heap of waiting retries, earliest first.
func newBackoffHeap() *minHeap[wakeup] {
	return &minHeap[wakeup]{less: func(a, b wakeup) bool {
		if !a.at.Equal(b.at) {
			return a.at.Before(b.at)
		}
		return a.n < b.n
	}}
}
