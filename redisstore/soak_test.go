package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/presence-go/presence/storetest"
)

// TestSoak churns viewers through three instances on one Redis, with a
// watcher on every room of every instance, and checks that nothing is
// left behind: every watcher agrees with List, and once every viewer has
// gone and the keys' TTLs have run (Redis's own clock, so real time, kept
// short with a small grace), no key remains under the soak's prefix.
func TestSoak(t *testing.T) {
	c := sharedClient(t)
	prefix := testPrefix(t, c)
	const grace = 200 * time.Millisecond
	rep := storetest.Soak(t, storetest.Suite{
		Shared: true,
		New: func(t *testing.T, ns string) presence.Store {
			return redisstore.New(c, redisstore.WithPrefix(prefix+":"+ns), redisstore.WithGrace(grace))
		},
	}, storetest.SoakConfig{
		Viewers: 1000,
		Rooms:   100,
		Ticks:   40,
		Leftover: func(t *testing.T, ns string) int {
			ctx := context.Background()
			deadline := time.Now().Add(15 * time.Second)
			for {
				keys, err := c.Keys(ctx, prefix+":"+ns+"*").Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys {
					if ttl := c.PTTL(ctx, k).Val(); ttl < 0 && ttl != -2*time.Nanosecond {
						t.Errorf("key %q has no TTL", k)
					}
				}
				if len(keys) == 0 || time.Now().After(deadline) {
					return len(keys)
				}
				time.Sleep(50 * time.Millisecond) // Redis expires keys in its own time
			}
		},
	})
	if rep.Departures == 0 || rep.Joins == 0 || rep.Crashes == 0 {
		t.Fatalf("soak exercised too little: %+v", rep)
	}
}
