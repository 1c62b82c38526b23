package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestOnePubSubConnection watches many rooms on a server of the test's
// own: they share one pub/sub connection, each still gets its own events,
// and after the connection is killed every room resyncs.
func TestOnePubSubConnection(t *testing.T) {
	srv := startServer(t)
	c := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer c.Close()
	mock := clock.NewMock()
	mock.Set(epoch)
	p := presence.New(redisstore.New(c), presence.WithClock(mock))
	defer p.Close()
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
