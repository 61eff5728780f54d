package mvcc

import (
	"container/heap"
	"sync"
)

// revWaiters holds the channels of callers waiting for a revision to be
// released, ordered by revision, so that a release wakes only those it
// satisfies.
type revWaiters struct {
	mu sync.Mutex
	h  waiterHeap
}

type revWaiter struct {
	rev int64
	ch  chan struct{}
}

type waiterHeap []revWaiter

func (h waiterHeap) Len() int           { return len(h) }
func (h waiterHeap) Less(i, j int) bool { return h[i].rev < h[j].rev }
func (h waiterHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *waiterHeap) Push(x any)        { *h = append(*h, x.(revWaiter)) }
func (h *waiterHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}

// add registers a wait for rev; the channel is closed once release has
// passed rev. A caller that stops waiting just drops the channel.
func (w *revWaiters) add(rev int64) <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	heap.Push(&w.h, revWaiter{rev, ch})
	w.mu.Unlock()
	return ch
}

// release wakes every waiter for a revision at or below safe.
func (w *revWaiters) release(safe int64) {
	w.mu.Lock()
	for len(w.h) > 0 && w.h[0].rev <= safe {
		close(heap.Pop(&w.h).(revWaiter).ch)
	}
	w.mu.Unlock()
}
