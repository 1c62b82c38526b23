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
