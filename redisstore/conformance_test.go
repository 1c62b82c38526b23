package redisstore_test

import (
	"testing"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/presence-go/presence/storetest"
	"github.com/redis/go-redis/v9"
)

func conformance(t *testing.T, c redis.UniversalClient) {
	prefix := testPrefix(t, c)
	storetest.Run(t, storetest.Suite{
		Shared:     true,
		ModelSteps: 2000,
		New: func(t *testing.T, ns string) presence.Store {
			return redisstore.New(c, redisstore.WithPrefix(prefix+":"+ns))
		},
	})
}

func TestConformance(t *testing.T) {
	conformance(t, sharedClient(t))
}

func TestConformanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	conformance(t, startCluster(t))
}
