package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/stretchr/testify/require"
)

// TestSessionCap checks Beat.MaxSessions: a new session beyond the cap
// fails and changes nothing; existing sessions refresh, also with another
// TTL; a due session does not count.
func TestSessionCap(t *testing.T) {
	c := sharedClient(t)
	st := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)))
	defer st.Close()
	ctx := context.Background()
	beat := func(session string, now, ttl time.Duration) error {
		return st.Heartbeat(ctx, presence.Beat{Room: "r", UserID: "u", SessionID: session,
			Now: epoch.Add(now), Deadline: epoch.Add(now + ttl), MaxSessions: 2})
	}
	require.NoError(t, beat("a", 0, time.Second))
	require.NoError(t, beat("b", 0, 3*time.Second))
	require.ErrorIs(t, beat("c", 0, time.Second), presence.ErrTooManySessions)
	require.NoError(t, beat("a", 0, 2*time.Second))
	vs, err := st.List(ctx, "r", epoch)
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, 2, vs[0].Sessions)
	// Once "a" is due, "c" fits.
	require.NoError(t, beat("c", 2500*time.Millisecond, time.Second))
	vs, err = st.List(ctx, "r", epoch.Add(2500*time.Millisecond))
	require.NoError(t, err)
	require.Equal(t, 2, vs[0].Sessions)
}

// TestEarlierDeadlinePublished checks that a change moving a present
// user's deadline earlier publishes an Update with unchanged metadata and
// the new deadline, and that Expire, which skips rooms with nothing due,
// still expires the user at that deadline.
func TestEarlierDeadlinePublished(t *testing.T) {
	c := sharedClient(t)
	st := redisstore.New(c, redisstore.WithPrefix(testPrefix(t, c)))
	defer st.Close()
	ctx := context.Background()
	events := make(chan presence.Event, 16)
	stop, err := st.Subscribe(ctx, "r", func(ev presence.Event) { events <- ev })
	require.NoError(t, err)
	defer stop()
	next := func() presence.Event {
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return presence.Event{}
		}
	}
	beat := func(session string, now, ttl time.Duration) {
		require.NoError(t, st.Heartbeat(ctx, presence.Beat{Room: "r", UserID: "u", SessionID: session,
			Now: epoch.Add(now), Deadline: epoch.Add(now + ttl), Meta: []byte("m")}))
	}
	beat("a", 0, 3*time.Second)
	require.Equal(t, presence.Join, next().Kind)
	n, err := st.Expire(ctx, epoch)
	require.NoError(t, err)
	require.True(t, epoch.Add(3*time.Second).Equal(n), "%v", n)

	// A second, shorter session: the user's deadline stays.
	beat("b", 0, time.Second)
	// Ending the longer one moves it to b's.
	require.NoError(t, st.Leave(ctx, "r", "u", "a", epoch))
	ev := next()
	require.Equal(t, presence.Update, ev.Kind)
	require.Equal(t, "m", string(ev.Viewer.Meta))
	require.True(t, epoch.Add(time.Second).Equal(ev.Viewer.Deadline), "%v", ev.Viewer.Deadline)
	n, err = st.Expire(ctx, epoch)
	require.NoError(t, err)
	require.True(t, epoch.Add(time.Second).Equal(n), "%v", n)

	// A heartbeat with a shorter TTL on the only session.
	beat("b", 100*time.Millisecond, 500*time.Millisecond)
	ev = next()
	require.Equal(t, presence.Update, ev.Kind)
	require.True(t, epoch.Add(600*time.Millisecond).Equal(ev.Viewer.Deadline), "%v", ev.Viewer.Deadline)
	n, err = st.Expire(ctx, epoch.Add(100*time.Millisecond))
	require.NoError(t, err)
	require.True(t, epoch.Add(600*time.Millisecond).Equal(n), "%v", n)
	_, err = st.Expire(ctx, epoch.Add(600*time.Millisecond))
	require.NoError(t, err)
	ev = next()
	require.Equal(t, presence.Leave, ev.Kind)
	require.Equal(t, presence.Expired, ev.Reason)
}
