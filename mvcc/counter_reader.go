package mvcc

import (
	"context"
	"sync"
	"time"
)

// counterReader batches the counter reads of linearizable requests: one
// engine read serves every request that arrived before it was sent. A
// request arriving while a read is in flight waits for the next one, since
// the one in flight may predate a write acknowledged before the request
// began — that is what keeps the batched reads linearizable.
type counterReader struct {
	s       *Store
	mu      sync.Mutex
	waiting []*counterWait
	running bool
}

type counterWait struct {
	done             chan struct{}
	counter, compact int64
	err              error
}

// read returns the revision counter and compacted revision as of some
// moment after the call began.
func (r *counterReader) read(ctx context.Context) (counter, compact int64, err error) {
	w := &counterWait{done: make(chan struct{})}
	r.mu.Lock()
	r.waiting = append(r.waiting, w)
	if !r.running {
		r.running = true
		go r.loop()
	}
	r.mu.Unlock()
	select {
	case <-w.done:
		return w.counter, w.compact, w.err
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

func (r *counterReader) loop() {
	for {
		r.mu.Lock()
		batch := r.waiting
		r.waiting = nil
		if len(batch) == 0 {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		counter, compact, err := r.s.readMeta(ctx)
		cancel()
		r.s.counterReads.Add(1)
		for _, w := range batch {
			w.counter, w.compact, w.err = counter, compact, err
			close(w.done)
		}
	}
}

// CounterReads reports how many counter reads linearizable requests caused.
func (s *Store) CounterReads() int64 { return s.counterReads.Load() }
