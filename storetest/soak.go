package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/presence-go/presence"
)

// SoakConfig sizes a soak run. Zero fields take the defaults.
type SoakConfig struct {
	Viewers int           // simulated viewers; default 2000
	Rooms   int           // rooms they spread over; default 200
	Ticks   int           // rounds of activity; default 60
	Tick    time.Duration // mock time per round; default 500ms
	TTL     time.Duration // heartbeat TTL; default 3s
	Seed    uint64        // zero picks a random seed

	// Leftover, if set, reports how much state the store still holds for
	// namespace ns (rooms in memory, keys in a database). It must reach
	// zero once every viewer has gone and every watcher has stopped.
	Leftover func(t *testing.T, ns string) int
}

// SoakReport counts what a soak run did.
type SoakReport struct {
	Viewers, Rooms, Instances, Watchers int
	Heartbeats, Leaves, Crashes         int
	Joins, Departures                   int // events seen by all watchers
}

// Soak churns simulated viewers through s's stores: they join, refresh,
// leave, and crash (stop heartbeating without leaving) in many rooms, with
// a watcher on every room of every instance (three instances when
// s.Shared). At the end it checks that every watcher's view equals List,
// that after the longest TTL every room is empty and every watcher holds
// nothing, that cfg.Leftover reaches zero, and that goroutines and heap are
// back near their starting level. Time moves only by the mock clock.
func Soak(t *testing.T, s Suite, cfg SoakConfig) SoakReport {
	t.Helper()
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.Viewers, 2000)
	def(&cfg.Rooms, 200)
	def(&cfg.Ticks, 60)
	if cfg.Tick <= 0 {
		cfg.Tick = 500 * time.Millisecond
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 3 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if s.Timeout <= 0 {
		s.Timeout = 30 * time.Second
	}
	t.Logf("soak seed %d", cfg.Seed)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()

	e := &env{suite: s, ns: fmt.Sprintf("soak-%d", time.Now().UnixNano()), mock: newMock()}
	instances := 1
	if s.Shared {
		instances = 3
	}
	rep := SoakReport{Viewers: cfg.Viewers, Rooms: cfg.Rooms, Instances: instances}
	rooms := make([]string, cfg.Rooms)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("soak:room-%d", i)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var ps []*presence.Presence
	var ws []*soakWatcher
	var drain sync.WaitGroup
	for range instances {
		st := s.New(t, e.ns)
		p := presence.New(st, presence.WithClock(e.mock))
		ps = append(ps, p)
		for _, room := range rooms {
			ch, err := p.Watch(ctx, room)
			if err != nil {
				t.Fatal(err)
			}
			w := &soakWatcher{room: room, state: map[string]bool{}, changed: make(chan struct{}, 1)}
			ws = append(ws, w)
			drain.Go(func() { w.run(ch) })
		}
	}
	rep.Watchers = len(ws)

	// Each worker owns a slice of the viewers and plays them tick by tick.
	type viewer struct {
		id, room string
		present  bool
		crashed  bool
	}
	const workers = 8
	viewers := make([]viewer, cfg.Viewers)
	for i := range viewers {
		viewers[i] = viewer{id: fmt.Sprintf("v%d", i), room: rooms[i%len(rooms)]}
	}
	var mu sync.Mutex
	for tick := range cfg.Ticks {
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(cfg.Seed, uint64(tick*workers+w)))
				var beats, leaves, crashes int
				for i := w; i < len(viewers); i += workers {
					v := &viewers[i]
					p := ps[rng.IntN(len(ps))]
					switch r := rng.IntN(100); {
					case v.crashed:
						if r < 5 { // a crashed client comes back
							v.crashed = false
						}
					case v.present && r < 4:
						v.present = false
						leaves++
						if err := p.Leave(ctx, v.room, v.id); err != nil {
							errs <- err
							return
						}
					case v.present && r < 8:
						v.present, v.crashed = false, true
						crashes++
					case v.present || r < 30:
						v.present = true
						beats++
						err := p.Heartbeat(ctx, v.room, v.id, cfg.TTL,
							presence.WithSession(fmt.Sprint("tab", r%2)), presence.WithMeta([]byte{byte(r % 3)}))
						if err != nil {
							errs <- err
							return
						}
					}
				}
				mu.Lock()
				rep.Heartbeats += beats
				rep.Leaves += leaves
				rep.Crashes += crashes
				mu.Unlock()
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("tick %d: %v", tick, err)
		}
		e.mock.Add(cfg.Tick)
	}

	// Every watcher converges on what List says.
	for _, w := range ws {
		want := map[string]bool{}
		vs, err := ps[0].List(ctx, w.room)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			want[v.UserID] = true
		}
		w.await(t, e.suite.Timeout, want)
	}
	// After the longest TTL (and a session possibly refreshed on the
	// last tick), nothing is left anywhere.
	// The watchers are checked before any read, so that the departures
	// they see come from the expiry timer, not from a read that expires.
	e.mock.Add(cfg.TTL + cfg.Tick)
	for _, w := range ws {
		w.await(t, e.suite.Timeout, map[string]bool{})
	}
	for _, room := range rooms {
		if n, err := ps[0].Count(ctx, room); err != nil || n != 0 {
			t.Fatalf("room %q: Count = %d, %v after every TTL passed", room, n, err)
		}
	}
	for _, w := range ws {
		w.mu.Lock()
		rep.Joins += w.joins
		rep.Departures += w.leaves
		w.mu.Unlock()
	}
	cancel()
	drain.Wait()
	for _, p := range ps {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Leftover != nil {
		if n := cfg.Leftover(t, e.ns); n != 0 {
			t.Fatalf("store still holds %d records for the soak's namespace", n)
		}
	}

	ps, ws, viewers = nil, nil, nil
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Goroutines of other packages (a client's connection pool) may linger
	// briefly; the library's own are checked by goleak in the caller.
	if g := runtime.NumGoroutine(); g > goroutines+10 {
		t.Errorf("goroutines: %d before the soak, %d after", goroutines, g)
	}
	const slack = 8 << 20
	if after.HeapAlloc > before.HeapAlloc+slack {
		t.Errorf("heap: %d bytes before the soak, %d after", before.HeapAlloc, after.HeapAlloc)
	}
	t.Logf("soak: %+v", rep)
	return rep
}

// soakWatcher applies one watch's events to a set of users.
type soakWatcher struct {
	room    string
	mu      sync.Mutex
	state   map[string]bool
	joins   int
	leaves  int
	changed chan struct{}
	err     error
}

func (w *soakWatcher) run(ch <-chan presence.Event) {
	for ev := range ch {
		w.mu.Lock()
		switch ev.Kind {
		case presence.Snapshot, presence.Resync:
			clear(w.state)
			for _, v := range ev.Viewers {
				w.state[v.UserID] = true
			}
		case presence.Join:
			w.state[ev.Viewer.UserID] = true
			w.joins++
		case presence.Leave:
			if !w.state[ev.Viewer.UserID] && w.err == nil {
				w.err = fmt.Errorf("room %q: leave of absent %q", w.room, ev.Viewer.UserID)
			}
			delete(w.state, ev.Viewer.UserID)
			w.leaves++
		}
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// await waits until the watcher's state equals want, checking after each
// event it applies.
func (w *soakWatcher) await(t *testing.T, timeout time.Duration, want map[string]bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		err, same := w.err, fmt.Sprint(w.state) == fmt.Sprint(want)
		state := fmt.Sprint(w.state)
		w.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if same {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("room %q: watcher holds %s, want %v", w.room, state, want)
		}
	}
}
