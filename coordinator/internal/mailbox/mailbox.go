// Package mailbox is an unbounded, ordered hand-off from a producer that
// must never block (a watch loop, a lock holder) to a consumer reading a
// channel. Coordinator implementations use it for Results, LostClaims and
// member watches, where dropping or blocking would both be bugs.
package mailbox

import (
	"context"
	"sync"
)

// Mailbox buffers values put into it and forwards them, in order, to Out.
// Run must be called (once, by the owner, in a goroutine the owner waits
// for) to forward; Put never blocks.
type Mailbox[T any] struct {
	mu     sync.Mutex
	items  []T
	notify chan struct{}
	out    chan T
}

// New returns an empty mailbox.
func New[T any]() *Mailbox[T] {
	return &Mailbox[T]{notify: make(chan struct{}, 1), out: make(chan T)}
}

// Put appends v. It never blocks.
func (m *Mailbox[T]) Put(v T) {
	m.mu.Lock()
	m.items = append(m.items, v)
	m.mu.Unlock()
	select {
	case m.notify <- struct{}{}:
	default:
	}
}

// Out is the channel values come out of. It is closed when Run returns.
func (m *Mailbox[T]) Out() <-chan T { return m.out }

// Run forwards values to Out until ctx is done, then closes Out. Values
// still buffered at that point are discarded.
func (m *Mailbox[T]) Run(ctx context.Context) {
	defer close(m.out)
	for {
		m.mu.Lock()
		if len(m.items) == 0 {
			m.mu.Unlock()
			select {
			case <-m.notify:
				continue
			case <-ctx.Done():
				return
			}
		}
		v := m.items[0]
		var zero T
		m.items[0] = zero
		m.items = m.items[1:]
		m.mu.Unlock()
		select {
		case m.out <- v:
		case <-ctx.Done():
			return
		}
	}
}
