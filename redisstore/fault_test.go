package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// watchState applies a watch's events and counts its resyncs.
type watchState struct {
	state
	resyncs atomic.Int64
}

func watchInto(t *testing.T, ctx context.Context, p *presence.Presence, room string) *watchState {
	t.Helper()
	ch, err := p.Watch(ctx, room)
	require.NoError(t, err)
	w := &watchState{state: state{users: map[string]string{}}}
	ev := <-ch
	require.Equal(t, presence.Snapshot, ev.Kind)
	w.apply(ev)
	go func() {
		for ev := range ch {
			if ev.Kind == presence.Resync {
				w.resyncs.Add(1)
			}
			w.apply(ev)
		}
	}()
	return w
}

func requireMatches(t *testing.T, w *watchState, p *presence.Presence, room string) {
	t.Helper()
	require.Eventually(t, func() bool {
		got, err := w.snapshot()
		require.NoError(t, err)
		vs, err := p.List(context.Background(), room)
		if err != nil {
			return false
		}
		want := map[string]string{}
		for _, v := range vs {
			want[v.UserID] = string(v.Meta)
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	}, 10*time.Second, 5*time.Millisecond, "watcher does not match List")
}

// TestRedisRestart kills the Redis server under traffic, checks that calls
// fail fast without piling up goroutines, restarts it on the same port and
// checks that everything, watchers included, recovers.
func TestRedisRestart(t *testing.T) {
	srv, _, mock, p := onOwnServer(t, nil, presence.WithRetry(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w := watchInto(t, ctx, p, "r")
	require.NoError(t, p.Heartbeat(ctx, "r", "alice", time.Hour))
	requireMatches(t, w, p, "r")

	// Traffic that runs through the outage.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var slowest atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
				start := time.Now()
				_ = p.Heartbeat(cctx, "r", fmt.Sprintf("u%d", i), time.Hour, presence.WithSession(fmt.Sprint(n%2)))
				ccancel()
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	srv.kill()
	time.Sleep(50 * time.Millisecond)
	slowest.Store(0)

	// Down: calls fail fast, with the operation named, and nothing piles up.
	before := runtime.NumGoroutine()
	for range 5 {
		start := time.Now()

		err := p.Heartbeat(ctx, "r", "bob", time.Hour)
		require.Error(t, err)
		require.Contains(t, err.Error(), "redisstore: heartbeat:")
		// Without a ctx deadline the client's own retries bound the
		// wait: by default about 1.7s of dial attempts, after a retry of
		// a command cut by the crash.
		require.Less(t, time.Since(start), 4*time.Second)
		_, err = p.List(ctx, "r")
		require.ErrorContains(t, err, "redisstore: list:")
		_, err = p.Count(ctx, "r")
		require.ErrorContains(t, err, "redisstore: count:")
		require.ErrorContains(t, p.Leave(ctx, "r", "bob"), "redisstore: leave:")
	}
	short, scancel := context.WithTimeout(ctx, 20*time.Millisecond)
	start := time.Now()
	require.Error(t, p.Heartbeat(short, "r", "bob", time.Hour))
	require.Less(t, time.Since(start), 500*time.Millisecond, "a short ctx deadline is honoured")
	scancel()
	_, err := p.Watch(ctx, "other")
	require.ErrorContains(t, err, "redisstore: subscribe:")
	require.Less(t, runtime.NumGoroutine(), before+20, "goroutines pile up while Redis is down")
	require.Less(t, time.Duration(slowest.Load()), 3*time.Second)
	for range 3 {
		_, err := p.List(short, "r")
		require.Error(t, err)
	}

	// Back, empty: heartbeats work again and the watcher resyncs.
	srv.start()
	require.Eventually(t, func() bool {
		return p.Heartbeat(ctx, "r", "carol", time.Hour) == nil
	}, 10*time.Second, 10*time.Millisecond)
	close(stop)
	wg.Wait()
	// The watcher retries a failed List after WithRetry on the Presence's
	// clock, so the mock moves on while we wait.
	require.Eventually(t, func() bool {
		mock.Add(time.Millisecond)
		return w.resyncs.Load() > 0
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Heartbeat(ctx, "r", "dave", time.Hour))
	requireMatches(t, w, p, "r")
	got, _ := w.snapshot()
	require.Contains(t, got, "dave")
	require.Contains(t, got, "carol")
	require.NotContains(t, got, "alice", "alice was lost with the server's data")

	// Leaves still flow, once go-redis's pool stops answering new dials
	// with the error of the outage (it probes again every second).
	require.Eventually(t, func() bool {
		return p.Leave(ctx, "r", "dave") == nil
	}, 5*time.Second, 10*time.Millisecond)
	requireMatches(t, w, p, "r")
	got, _ = w.snapshot()
	require.NotContains(t, got, "dave")
}

// TestPubSubKilled drops only the pub/sub connections; the watcher must
// resync and keep receiving events.
func TestPubSubKilled(t *testing.T) {
	_, c, _, p := onOwnServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	w := watchInto(t, ctx, p, "r")
	require.NoError(t, p.Heartbeat(ctx, "r", "alice", time.Hour))
	requireMatches(t, w, p, "r")

	killed, err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, killed)
	// A change made while the subscription is down is not lost.
	require.NoError(t, p.Heartbeat(ctx, "r", "bob", time.Hour))
	require.Eventually(t, func() bool { return w.resyncs.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Heartbeat(ctx, "r", "carol", time.Hour))
	requireMatches(t, w, p, "r")
	got, _ := w.snapshot()
	require.Len(t, got, 3)
}

// TestMalformedMessageResyncs publishes garbage on a room's channel; the
// watcher must resync rather than fail.
func TestMalformedMessageResyncs(t *testing.T) {
	c := sharedClient(t)
	prefix := testPrefix(t, c)
	mock := clock.NewMock()
	mock.Set(epoch)
	st := redisstore.New(c, redisstore.WithPrefix(prefix))
	p := presence.New(st, presence.WithClock(mock))
	defer p.Close()
	ctx := context.Background()
	w := watchInto(t, ctx, p, "r")
	require.NoError(t, c.Publish(ctx, prefix+":{cg}:c", "1,2,0,garbage").Err())
	require.Eventually(t, func() bool { return w.resyncs.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Heartbeat(ctx, "r", "alice", time.Hour))
	requireMatches(t, w, p, "r")
}

// TestClosed checks errors after Close and that Close leaves the client
// open.
func TestClosed(t *testing.T) {
	c := sharedClient(t)
	st := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)))
	require.NoError(t, st.Close())
	require.NoError(t, st.Close())
	ctx := context.Background()
	err := st.Heartbeat(ctx, presence.Beat{Room: "r", UserID: "u", Now: epoch, Deadline: epoch.Add(time.Second)})
	require.True(t, errors.Is(err, presence.ErrClosed), "%v", err)
	require.ErrorContains(t, err, "redisstore: heartbeat:")
	_, err = st.Subscribe(ctx, "r", func(presence.Event) {})
	require.ErrorIs(t, err, presence.ErrClosed)
	_, err = st.Expire(ctx, epoch)
	require.ErrorIs(t, err, presence.ErrClosed)
	require.NoError(t, c.Ping(ctx).Err(), "Close closed the host's client")
}

// TestExpireBetweenRefreshCommands runs Expire between the two commands of
// a refresh of a user with several sessions: the sessions' deadlines have
// moved, the user's not yet, and is due. The user must stay present.
func TestExpireBetweenRefreshCommands(t *testing.T) {
	c := sharedClient(t)
	ctx := context.Background()
	prefix := testPrefix(t, c)
	st := redisstore.New(c, redisstore.WithPrefix(prefix))
	defer st.Close()
	stop, err := st.Subscribe(ctx, "r", func(presence.Event) {}) // so that Expire covers the room
	require.NoError(t, err)
	defer stop()

	t0 := time.UnixMilli(1_900_000_000_000)
	for _, s := range []string{"a", "b"} {
		require.NoError(t, st.Heartbeat(ctx, presence.Beat{Room: "r", UserID: "ann", SessionID: s, Now: t0, Deadline: t0.Add(time.Second)}))
	}
	// The first command of each session's refresh, as another process
	// sends it (see the package documentation for the layout).
	later := t0.Add(3 * time.Second)
	for _, s := range []string{"a", "b"} {
		n, err := c.ZAddXX(ctx, prefix+":{cg}:s", redis.Z{Score: float64(later.UnixMilli()), Member: "3:ann1000:" + s}).Result()
		require.NoError(t, err)
		require.Zero(t, n) // XX without CH counts no updates
	}
	now := t0.Add(1500 * time.Millisecond)
	_, err = st.Expire(ctx, now)
	require.NoError(t, err)

	n, err := st.Count(ctx, "r", now)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	vs, err := st.List(ctx, "r", now)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, 2, vs[0].Sessions)
	require.True(t, vs[0].Deadline.Equal(later), "deadline %v, want %v", vs[0].Deadline, later)
}

// TestScriptsReloaded flushes the server's script cache before each script
// runs: every script must fall back from EVALSHA to EVAL and work.
func TestScriptsReloaded(t *testing.T) {
	_, c, mock, p := onOwnServer(t, nil)
	ctx := context.Background()
	ch, err := p.Watch(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, presence.Snapshot, (<-ch).Kind)
	next := func(kind presence.EventKind, user string) presence.Event {
		t.Helper()
		select {
		case ev := <-ch:
			require.Equal(t, kind, ev.Kind, "event %+v", ev)
			require.Equal(t, user, ev.Viewer.UserID)
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %v of %s", kind, user)
			return presence.Event{}
		}
	}

	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, p.Heartbeat(ctx, "r", "ann", time.Second))
	next(presence.Join, "ann")
	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, p.Heartbeat(ctx, "r", "bob", time.Hour))
	next(presence.Join, "bob")
	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, p.Leave(ctx, "r", "bob"))
	require.Equal(t, presence.Left, next(presence.Leave, "bob").Reason)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	mock.Add(2 * time.Second) // the Presence's expiry runs the expiry script
	require.Equal(t, presence.Expired, next(presence.Leave, "ann").Reason)
}
