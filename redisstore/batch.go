package redisstore

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the operations in one pipeline.
const maxBatch = 512

// op is one operation that a batch runs in one or more rounds: each round
// queues the op's commands into a shared pipeline, and after the pipeline
// ran, settle reads their replies and says whether the op needs another
// round (a script the server had not cached, a refresh that turned out to
// need the script).
type op interface {
	queue(ctx context.Context, p redis.Pipeliner)
	settle() (again bool)
	result() error
}

// scriptRun is one run of a script as an op: EVALSHA, then EVAL if the
// server had not cached the script. Its reply is in cmd.
type scriptRun struct {
	script *redis.Script
	keys   []string
	args   []any
	eval   bool
	cmd    *redis.Cmd
}

func (r *scriptRun) queue(ctx context.Context, p redis.Pipeliner) {
	run := r.script.EvalSha
	if r.eval {
		run = r.script.Eval
	}
	r.cmd = run(ctx, p, r.keys, r.args...)
}

func (r *scriptRun) settle() bool {
	if !r.eval && isNoScript(r.cmd.Err()) {
		r.eval = true
		return true
	}
	return false
}

func (r *scriptRun) result() error { return nil }

// waiter is a caller blocked on its op. Its done channel has room for the
// one signal finish sends, so a waiter can be reused once its caller
// received it.
type waiter struct {
	ctx  context.Context
	op   op
	done chan struct{}
	err  error
}

// finish signals the caller that err is set. It is called once per use.
func (w *waiter) finish() { w.done <- struct{}{} }

// batcher gathers concurrent operations into pipelines. A caller that
// finds fewer than max pipelines in flight starts one with everything that
// is waiting; the others wait for it, so under load each pipeline carries
// every call that arrived while the previous ones ran. The pipelines run
// on up to max goroutines, started as load first needs them and kept until
// the store closes.
type batcher struct {
	s   *Store
	max int

	waiters sync.Pool      // of *waiter
	next    chan []*waiter // hands a batch to an idle worker

	mu       sync.Mutex
	pending  []*waiter
	inflight int
	workers  int  // goroutines started by work; they live until Close
	failing  bool // the last pipeline failed as a whole
	closed   bool
}

// do runs o in the next pipeline and waits for it or for ctx.
func (b *batcher) do(ctx context.Context, o op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w, _ := b.waiters.Get().(*waiter)
	if w == nil {
		w = &waiter{done: make(chan struct{}, 1)}
	}
	w.ctx, w.op, w.err = ctx, o, nil
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return presence.ErrClosed
	}
	b.pending = append(b.pending, w)
	batch := b.take()
	spawn := batch != nil && b.workers < b.max
	if spawn {
		b.workers++
		b.s.wg.Add(1) // under b.mu, so Close cannot be waiting yet
	}
	b.mu.Unlock()
	switch {
	case spawn:
		go b.work(batch)
	case batch != nil:
		// Fewer than max pipelines are in flight, so a worker is idle
		// or about to be.
		select {
		case b.next <- batch:
		case <-b.s.ctx.Done():
			b.abandon(batch)
		}
	}
	select {
	case <-w.done:
		err := w.err
		*w = waiter{done: w.done}
		b.waiters.Put(w) // finished: nothing refers to it any more
		return err
	case <-ctx.Done():
		return ctx.Err() // w is left to the garbage collector
	}
}

// take removes the next batch from pending if a pipeline may start, and
// counts it in flight. b.mu must be held.
func (b *batcher) take() []*waiter {
	limit := b.max
	if b.failing {
		limit = 1 // one pipeline probes Redis; the rest fail with it
	}
	if b.inflight >= limit || len(b.pending) == 0 {
		return nil
	}
	n := min(len(b.pending), maxBatch)
	batch := make([]*waiter, n)
	copy(batch, b.pending)
	rest := copy(b.pending, b.pending[n:])
	clear(b.pending[rest:])
	b.pending = b.pending[:rest]
	b.inflight++
	return batch
}

// work is one of the up to max long-lived goroutines that run pipelines:
// it flushes batch, then waits for the next one until the store closes.
func (b *batcher) work(batch []*waiter) {
	defer b.s.wg.Done()
	for {
		b.flush(batch)
		select {
		case batch = <-b.next:
		case <-b.s.ctx.Done():
			return
		}
	}
}

// abandon fails a batch that no worker will run because the store closed.
func (b *batcher) abandon(batch []*waiter) {
	for _, w := range batch {
		w.err = presence.ErrClosed
		w.finish()
	}
	b.mu.Lock()
	b.inflight--
	b.mu.Unlock()
}

// flush runs batch, then whatever queued meanwhile, until nothing waits.
func (b *batcher) flush(batch []*waiter) {
	for {
		err := b.run(batch)
		// The callers just finished are runnable, and most will queue
		// their next call at once: let them, so that the next pipeline
		// carries them.
		runtime.Gosched()
		b.mu.Lock()
		b.inflight--
		b.failing = err != nil
		if b.closed {
			err = presence.ErrClosed
		}
		if err != nil {
			// Redis failed the whole pipeline (it is unreachable, say)
			// or the store closed: the calls that queued meanwhile would
			// only wait to fail the same way, so they fail now.
			for _, w := range b.pending {
				w.err = err
				w.finish()
			}
			clear(b.pending)
			b.pending = b.pending[:0]
		}
		batch = b.take()
		b.mu.Unlock()
		if batch == nil {
			return
		}
	}
}

// run executes the ops of batch in as many pipeline rounds as they need.
// It returns the error that failed a whole pipeline, if one did.
func (b *batcher) run(batch []*waiter) error {
	ctx := b.s.ctx
	live := batch[:0:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.err = err
			w.finish()
			continue
		}
		live = append(live, w)
	}
	for round := 0; len(live) > 0; round++ {
		pipe := b.s.client.Pipeline()
		for _, w := range live {
			w.op.queue(ctx, pipe)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && !errors.Is(err, redis.Nil) && !isReplyError(err) {
			// The pipeline as a whole failed (connection, closing).
			for _, w := range live {
				w.err = err
				w.finish()
			}
			return err
		}
		again := live[:0]
		for _, w := range live {
			if round < 3 && w.op.settle() {
				again = append(again, w)
				continue
			}
			w.err = w.op.result()
			w.finish()
		}
		live = again
	}
	return nil
}

// isReplyError reports whether err is an error reply of one command,
// rather than a failure of the pipeline.
func isReplyError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

func (b *batcher) close() {
	b.mu.Lock()
	b.closed = true
	for _, w := range b.pending {
		w.err = presence.ErrClosed
		w.finish()
	}
	b.pending = nil
	b.mu.Unlock()
}
