package redisstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/stretchr/testify/require"
)

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// state is what one watcher has built from its events.
type state struct {
	mu    sync.Mutex
	users map[string]string // user → meta
	err   error
}

func (s *state) apply(ev presence.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Kind {
	case presence.Snapshot, presence.Resync:
		clear(s.users)
		for _, v := range ev.Viewers {
			s.users[v.UserID] = string(v.Meta)
		}
	case presence.Join, presence.Update:
		s.users[ev.Viewer.UserID] = string(ev.Viewer.Meta)
	case presence.Leave:
		if _, ok := s.users[ev.Viewer.UserID]; !ok && s.err == nil {
			s.err = fmt.Errorf("leave of %q, which the watcher does not hold", ev.Viewer.UserID)
		}
		delete(s.users, ev.Viewer.UserID)
	}
}

func (s *state) snapshot() (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps(s.users), s.err
}

func maps(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func listed(t *testing.T, p *presence.Presence, room string) map[string]string {
	t.Helper()
	vs, err := p.List(context.Background(), room)
	require.NoError(t, err)
	m := map[string]string{}
	for _, v := range vs {
		m[v.UserID] = string(v.Meta)
	}
	return m
}

// storeLog records the raw events one store subscription delivers, per
// user, to check that every join and departure is published exactly once.
type storeLog struct {
	mu     sync.Mutex
	kinds  map[string][]presence.EventKind
	resync int
}

func (l *storeLog) add(ev presence.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Kind == presence.Resync {
		l.resync++
		return
	}
	l.kinds[ev.Viewer.UserID] = append(l.kinds[ev.Viewer.UserID], ev.Kind)
}

// check reports an error unless every user's events alternate join and
// leave, with updates only while present, ending with a leave if final.
func (l *storeLog) check(final bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.resync > 0 {
		return fmt.Errorf("%d resyncs", l.resync)
	}
	for user, ks := range l.kinds {
		present := false
		for i, k := range ks {
			switch {
			case k == presence.Join && !present:
				present = true
			case k == presence.Leave && present:
				present = false
			case k == presence.Update && present:
			default:
				return fmt.Errorf("user %q: event %d is %v in %v", user, i, k, ks)
			}
		}
		if final && present {
			return fmt.Errorf("user %q still present after %v", user, ks)
		}
	}
	return nil
}

// TestChurn runs three Presence instances on one Redis, each watching two
// rooms, through concurrent joins, refreshes, metadata changes, leaves and
// expiries driven by one mock clock. Every watcher must end with List's
// state, and every store subscription must see each join and departure
// exactly once.
func TestChurn(t *testing.T) {
	c := sharedClient(t)
	prefix := testPrefix(t, c)
	mock := clock.NewMock()
	mock.Set(epoch)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rooms := []string{"doc:1", "{lobby}\n"}

	var ps []*presence.Presence
	var states []*state
	var logs []*storeLog
	for range 3 {
		st := redisstore.New(c, redisstore.WithPrefix(prefix))
		p := presence.New(st, presence.WithClock(mock))
		ps = append(ps, p)
		for _, room := range rooms {
			l := &storeLog{kinds: map[string][]presence.EventKind{}}
			stop, err := st.Subscribe(ctx, room, l.add)
			require.NoError(t, err)
			defer stop()
			logs = append(logs, l)

			ch, err := p.Watch(ctx, room)
			require.NoError(t, err)
			s := &state{users: map[string]string{}}
			states = append(states, s)
			go func() {
				for ev := range ch {
					s.apply(ev)
				}
			}()
		}
	}
	defer func() {
		for _, p := range ps {
			p.Close()
		}
	}()
	// Wait for the snapshots, so that the churn is seen as events.
	require.Eventually(t, func() bool {
		for _, p := range ps {
			if _, err := p.Count(ctx, rooms[0]); err != nil {
				return false
			}
		}
		return true
	}, 5*time.Second, time.Millisecond)

	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 6 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 300 {
				p := ps[r.IntN(len(ps))]
				room := rooms[r.IntN(len(rooms))]
				user := fmt.Sprintf("u%d", r.IntN(12))
				session := fmt.Sprint(r.IntN(3))
				var err error
				switch x := r.IntN(20); {
				case x < 12:
					ttl := time.Duration(1+r.IntN(4)) * time.Second
					opts := []presence.HeartbeatOption{presence.WithSession(session)}
					if x == 0 {
						opts = append(opts, presence.WithMeta([]byte{byte('a' + r.IntN(3))}))
					}
					err = p.Heartbeat(ctx, room, user, ttl, opts...)
				case x < 15:
					err = p.LeaveSession(ctx, room, user, session)
				case x < 16:
					err = p.Leave(ctx, room, user)
				default:
					_, err = p.List(ctx, room)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			mock.Add(50 * time.Millisecond)
			time.Sleep(time.Millisecond) // let the workers interleave with expiries
		}
	}
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	converged := func(t *testing.T) {
		t.Helper()
		require.Eventually(t, func() bool {
			for i, s := range states {
				got, err := s.snapshot()
				require.NoError(t, err)
				want := listed(t, ps[i/len(rooms)], rooms[i%len(rooms)])
				if fmt.Sprint(got) != fmt.Sprint(want) {
					return false
				}
			}
			return true
		}, 10*time.Second, 5*time.Millisecond, "watchers do not match List")
	}
	converged(t)
	for _, l := range logs {
		require.NoError(t, l.check(false))
	}

	// Everyone expires; every watcher sees every departure.
	mock.Add(time.Minute)
	converged(t)
	for i := range states {
		require.Empty(t, listed(t, ps[i/len(rooms)], rooms[i%len(rooms)]))
	}
	require.Eventually(t, func() bool {
		for _, l := range logs {
			if l.check(true) != nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
	for i, l := range logs[1:] {
		l.mu.Lock()
		logs[0].mu.Lock()
		if i%len(rooms) == len(rooms)-1 { // same room as logs[0]
			for u, ks := range logs[0].kinds {
				require.True(t, slices.Equal(ks, l.kinds[u]), "subscribers disagree on %q", u)
			}
		}
		logs[0].mu.Unlock()
		l.mu.Unlock()
	}
}
