package presence

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Watch streams the changes of room. The first event is a Snapshot of the
// room's viewers; then come a Join for each user that arrives, a Leave (with
// its Reason) for each that departs, and an Update when a present user's
// metadata changes. Refreshing heartbeats send nothing.
//
// The state a watcher builds by applying the events in order (Snapshot and
// Resync replace it, Join and Update set a viewer, Leave removes one) is
// the room's true state as of the last event: each departure arrives once,
// and a Leave never comes for a user the watcher does not hold.
//
// A watcher that reads too slowly never slows heartbeats. Changes queue for
// it, up to the WithWatchBuffer limit; past that the queue is dropped and,
// once the watcher reads again, it receives a Resync holding the room's
// current viewers, after which events continue. The same happens when the
// store reports it may have missed changes, such as after a lost
// connection.
//
// The channel is closed when ctx is done or the Presence is closed. Watch
// returns ErrWatchUnsupported if the store does not implement Subscriber.
func (p *Presence) Watch(ctx context.Context, room string) (<-chan Event, error) {
	const op = "watch"
	if err := p.limits.validate(call{op: op, room: room}); err != nil {
		return nil, err
	}
	if p.sub == nil {
		return nil, opError(op, ErrWatchUnsupported)
	}
	if !p.enter() {
		return nil, opError(op, ErrClosed)
	}
	w := &watcher{
		p:      p,
		room:   room,
		out:    make(chan Event),
		notify: make(chan struct{}, 1),
		state:  make(map[string]Viewer),
	}
	rw, err := p.joinRoom(ctx, w)
	if err != nil {
		p.wg.Done()
		return nil, opError(op, err)
	}
	go w.run(ctx, rw)
	return w.out, nil
}

// roomWatch is the one store subscription a Presence holds for a watched
// room, shared by all of the room's watchers.
type roomWatch struct {
	p     *Presence
	room  string
	ready chan struct{} // closed once the subscription is settled
	err   error         // why subscribing failed; set before ready closes
	stop  func()        // set before ready closes

	mu       sync.Mutex
	watchers map[*watcher]struct{}
	stopOnce sync.Once
}

// joinRoom adds w to its room's watchers, subscribing to the room first if
// no one watches it yet, and returns once the subscription is established.
func (p *Presence) joinRoom(ctx context.Context, w *watcher) (*roomWatch, error) {
	p.mu.Lock()
	rw, ok := p.rooms[w.room]
	if !ok {
		rw = &roomWatch{p: p, room: w.room, ready: make(chan struct{}), watchers: make(map[*watcher]struct{})}
		p.rooms[w.room] = rw
	}
	rw.mu.Lock()
	full := p.maxWatchers > 0 && len(rw.watchers) >= p.maxWatchers
	if !full {
		rw.watchers[w] = struct{}{}
	}
	rw.mu.Unlock()
	p.mu.Unlock()
	if full {
		return nil, fmt.Errorf("%w: room has %d", ErrTooManyWatchers, p.maxWatchers)
	}

	if !ok {
		// The subscription is shared, so no one watcher's ctx may cut it
		// short: it lives on the Presence's, and each caller stops
		// waiting for it on its own.
		p.wg.Add(1) // the caller's own enter keeps Close waiting
		go func() {
			defer p.wg.Done()
			rw.stop, rw.err = p.sub.Subscribe(p.ctx, w.room, rw.deliver)
			close(rw.ready)
			p.mu.Lock()
			orphaned := p.rooms[rw.room] != rw
			p.mu.Unlock()
			if orphaned { // every watcher gave up, or Close ran, meanwhile
				rw.unsubscribe()
			}
		}()
	}
	select {
	case <-rw.ready:
	case <-ctx.Done():
		p.leaveRoom(rw, w)
		return nil, ctx.Err()
	}
	if rw.err != nil {
		p.leaveRoom(rw, w)
		if p.closed.Load() { // Close cut the subscription short
			return nil, ErrClosed
		}
		return nil, rw.err
	}
	return rw, nil
}

// leaveRoom removes w, and the subscription with the room's last watcher.
func (p *Presence) leaveRoom(rw *roomWatch, w *watcher) {
	p.mu.Lock()
	rw.mu.Lock()
	delete(rw.watchers, w)
	empty := len(rw.watchers) == 0
	rw.mu.Unlock()
	if empty && p.rooms[rw.room] == rw {
		delete(p.rooms, rw.room)
	}
	p.mu.Unlock()
	if empty {
		rw.unsubscribe()
	}
}

// unsubscribe ends the store subscription. While it is still being set
// up, the goroutine setting it up ends it instead, once it settles.
func (rw *roomWatch) unsubscribe() {
	select {
	case <-rw.ready:
		if rw.stop != nil {
			rw.stopOnce.Do(rw.stop)
		}
	default:
	}
}

// deliver is the subscription callback: it queues ev for every watcher of
// the room. It never blocks on a watcher.
func (rw *roomWatch) deliver(ev Event) {
	if (ev.Kind == Join || ev.Kind == Update) && !ev.Viewer.Deadline.IsZero() {
		// A change made by another process may set a deadline this
		// Presence's timer has not seen.
		rw.p.arm(ev.Viewer.Deadline)
	}
	rw.mu.Lock()
	for w := range rw.watchers {
		w.push(ev)
	}
	rw.mu.Unlock()
}

// watcher is one Watch call: a queue filled by deliver and drained by run,
// which owns state and the output channel.
type watcher struct {
	p    *Presence
	room string
	out  chan Event

	mu     sync.Mutex
	queue  []Event
	lost   bool // the queue overflowed or the store lost changes
	notify chan struct{}

	state map[string]Viewer // what the consumer has been told; run only
}

func (w *watcher) push(ev Event) {
	w.mu.Lock()
	if ev.Kind == Resync || len(w.queue) >= w.p.buffer {
		clear(w.queue)
		w.queue = w.queue[:0]
		w.lost = true
	} else {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *watcher) run(ctx context.Context, rw *roomWatch) {
	defer w.p.wg.Done()
	defer close(w.out)
	defer w.p.leaveRoom(rw, w)

	kind, stale := Snapshot, true
	var batch []Event
	for {
		if stale {
			if !w.resync(ctx, kind) {
				return
			}
			kind, stale = Resync, false
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return
		case <-w.p.ctx.Done():
			return
		}
		w.mu.Lock()
		batch, w.queue = w.queue, batch[:0]
		stale, w.lost = w.lost, false
		w.mu.Unlock()
		if stale {
			continue
		}
		for i, ev := range batch {
			batch[i] = Event{}
			if ev, ok := w.filter(ev); ok && !w.send(ctx, ev) {
				return
			}
		}
	}
}

// resync replaces the watcher's state with the room's current viewers and
// sends them as an event of the given kind, retrying while the store fails.
func (w *watcher) resync(ctx context.Context, kind EventKind) bool {
	for {
		vs, err := w.p.list(ctx, "watch", w.room)
		if err == nil {
			clear(w.state)
			for _, v := range vs {
				w.state[v.UserID] = v
			}
			return w.send(ctx, Event{Kind: kind, Room: w.room, Time: w.p.now(), Viewers: vs})
		}
		if ctx.Err() != nil || w.p.ctx.Err() != nil {
			return false
		}
		w.p.log.Warn("presence: watch resync", "room", w.room, "err", err)
		// Real time, not the Presence's clock: this waits for a store to
		// recover, which a mock clock standing still must not prevent.
		t := time.NewTimer(w.p.retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-w.p.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// filter drops the events that would not change what the consumer knows,
// so that replays around a snapshot are harmless, and keeps state current.
func (w *watcher) filter(ev Event) (Event, bool) {
	prev, had := w.state[ev.Viewer.UserID]
	switch ev.Kind {
	case Join, Update:
		if had && sameViewer(prev, ev.Viewer) {
			return ev, false
		}
		ev.Kind = Join
		if had {
			ev.Kind = Update
		}
		w.state[ev.Viewer.UserID] = ev.Viewer
		return ev, true
	case Leave:
		if !had {
			return ev, false
		}
		delete(w.state, ev.Viewer.UserID)
		return ev, true
	}
	return ev, false
}

func (w *watcher) send(ctx context.Context, ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-ctx.Done():
		return false
	case <-w.p.ctx.Done():
		return false
	}
}
