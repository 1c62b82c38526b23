package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// A call whose context ends while Redis is stalled returns at once with
// the context's error; once Redis answers again the state is whole: the
// cut-off heartbeat either took effect entirely or not at all, and the
// store keeps working.
func TestContextCancelledMidCall(t *testing.T) {
	srv, _, _, p := onOwnServer(t, nil)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer admin.Close()
	ctx := context.Background()
	require.NoError(t, p.Heartbeat(ctx, "r", "alice", time.Minute))

	// Stall every client but admin for a second (CLIENT UNPAUSE waits it out too).
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", 1000, "ALL").Err())
	cut, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Heartbeat(cut, "r", "bob", time.Minute, presence.WithMeta([]byte("B")))
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "err = %v", err)
	require.Less(t, time.Since(start), time.Second, "the call outlived its context")
	_, err = p.List(cut, "r")
	require.Error(t, err)
	require.NoError(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())

	vs, err := p.List(ctx, "r")
	require.NoError(t, err)
	switch len(vs) {
	case 1: // bob's heartbeat never ran
		require.Equal(t, "alice", vs[0].UserID)
	case 2: // it ran whole
		require.Equal(t, "bob", vs[1].UserID)
		require.Equal(t, "B", string(vs[1].Meta))
	default:
		t.Fatalf("viewers %+v", vs)
	}
	require.NoError(t, p.Heartbeat(ctx, "r", "carol", time.Minute))
	n, err := p.Count(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, len(vs)+1, n)
}
