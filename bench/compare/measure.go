package main

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A sample is one measured run of a throughput cell.
type sample struct {
	opsPerSec   float64
	allocsPerOp float64       // heap allocations of the whole process per op
	serverPerOp time.Duration // Redis server CPU per op, all clients included
}

// A worker is one caller's state in a measured loop.
type worker struct {
	id   int        // 0 .. callers-1
	iter int        // operations done so far
	rand *rand.Rand // the caller's own source
}

// measure calls op from callers goroutines for d and reports the total
// throughput. The first error stops the run and is returned.
func measure(callers int, d time.Duration, op func(w *worker) error) (sample, error) {
	workers := make([]*worker, callers)
	for i := range workers {
		workers[i] = &worker{id: i, rand: rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))}
	}
	var (
		stop     atomic.Bool
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
		ready    sync.WaitGroup
		begin    = make(chan struct{})
	)
	for _, w := range workers {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-begin
			for !stop.Load() {
				if err := op(w); err != nil {
					errOnce.Do(func() { firstErr = err })
					stop.Store(true)
					return
				}
				w.iter++
			}
		}()
	}
	ready.Wait()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	close(begin)
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	wg.Wait()
	elapsed := time.Since(start)
	timer.Stop()
	runtime.ReadMemStats(&after)
	if firstErr != nil {
		return sample{}, firstErr
	}
	ops := 0
	for _, w := range workers {
		ops += w.iter
	}
	if ops == 0 {
		return sample{}, nil
	}
	return sample{
		opsPerSec:   float64(ops) / elapsed.Seconds(),
		allocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(ops),
	}, nil
}

// parallel calls fn(i) for every i in [0, n) from callers goroutines and
// returns the first error.
func parallel(n, callers int, fn func(i int) error) error {
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
		failed   atomic.Bool
		wg       sync.WaitGroup
	)
	for range min(callers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// median returns the middle value of xs, or the mean of the two middle
// ones.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
