package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOnePubSubConnection watches many rooms on a server of the test's
// own: they share one pub/sub connection, each still gets its own events,
// and after the connection is killed every room resyncs.
func TestOnePubSubConnection(t *testing.T) {
	_, c, _, p := onOwnServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	const rooms = 50
	ws := make([]*watchState, rooms)
	for i := range ws {
		ws[i] = watchInto(t, ctx, p, fmt.Sprint("room-", i))
	}
	list, err := c.ClientList(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(list, "cmd=subscribe")+strings.Count(list, "cmd=unsubscribe"),
		"pub/sub connections:\n%s", list)
	for i := range ws {
		require.NoError(t, p.Heartbeat(ctx, fmt.Sprint("room-", i), fmt.Sprint("u", i), time.Hour))
	}
	for i, w := range ws {
		requireMatches(t, w, p, fmt.Sprint("room-", i))
	}

	killed, err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, killed)
	for i, w := range ws {
		require.Eventually(t, func() bool { return w.resyncs.Load() > 0 }, 10*time.Second, 5*time.Millisecond, "room %d", i)
	}
	require.NoError(t, p.Heartbeat(ctx, "room-0", "late", time.Hour))
	requireMatches(t, ws[0], p, "room-0")
}
