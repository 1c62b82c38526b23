package redisstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/stretchr/testify/require"
)

// TestKeysExpire checks on a server of the test's own that every key the
// store writes carries a TTL no longer than the longest deadline plus the
// grace period, and that once every viewer is gone nothing remains.
func TestKeysExpire(t *testing.T) {
	const grace = 100 * time.Millisecond
	_, c, mock, p := onOwnServer(t, []redisstore.Option{redisstore.WithGrace(grace)})
	ctx := context.Background()

	ch, err := p.Watch(ctx, "watched")
	require.NoError(t, err)
	<-ch
	const longest = 300 * time.Millisecond
	for i := range 20 {
		room := fmt.Sprintf("room-%d", i%4)
		if i%5 == 0 {
			room = "watched"
		}
		ttl := time.Duration(50+i*10) * time.Millisecond
		require.NoError(t, p.Heartbeat(ctx, room, fmt.Sprint("u", i), ttl,
			presence.WithSession(fmt.Sprint(i%2)), presence.WithMeta([]byte("m"))))
		require.NoError(t, p.Heartbeat(ctx, room, fmt.Sprint("u", i), ttl)) // a refresh
	}
	require.NoError(t, p.Leave(ctx, "room-1", "u1"))
	// Ending one of a user's sessions moves the user between the zsets,
	// which may empty one and fill it again.
	for _, n := range []int{2, 3} {
		room := fmt.Sprint("sessions-", n)
		for s := range n {
			require.NoError(t, p.Heartbeat(ctx, room, "multi", 200*time.Millisecond, presence.WithSession(fmt.Sprint(s))))
		}
		require.NoError(t, p.LeaveSession(ctx, room, "multi", "0"))
	}

	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "key %q has no TTL", k)
		require.LessOrEqual(t, ttl, longest+grace, "key %q lives too long", k)
	}
	// Every viewer expires; the watched room is expired by the store, the
	// others only by their TTLs.
	mock.Add(time.Second)
	require.Eventually(t, func() bool {
		n, err := c.DBSize(ctx).Result()
		return err == nil && n == 0
	}, 10*time.Second, 20*time.Millisecond, "keys remain")
}
