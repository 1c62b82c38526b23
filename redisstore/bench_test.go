package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
)

// The benchmarks compare the store with plain go-redis on the same server
// in the same run; read them as ratios (benchstat -col /impl).

const benchTTL = time.Minute

// callers runs f from n goroutines (1 means the benchmark's own), each with
// its own index.
func callers(b *testing.B, n int, f func(i int)) {
	if n == 1 {
		for b.Loop() {
			f(0)
		}
		return
	}
	b.SetParallelism(n / max(1, testingProcs()))
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			f(i)
		}
	})
}

func testingProcs() int {
	// RunParallel starts SetParallelism * GOMAXPROCS goroutines.
	return runtimeProcs
}

// BenchmarkRefresh measures a refreshing heartbeat: the store through a
// Presence against a loop of one plain ZADD per call.
func BenchmarkRefresh(b *testing.B) {
	c := sharedClient(b)
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("impl=zadd/callers=%d", n), func(b *testing.B) {
			key := testPrefix(b, c) + ":zadd"
			ctx := context.Background()
			b.ReportAllocs()
			callers(b, n, func(i int) {
				if err := c.ZAdd(ctx, key, redis.Z{Score: float64(time.Now().UnixMilli()), Member: "u" + strconv.Itoa(i)}).Err(); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(fmt.Sprintf("impl=redisstore/callers=%d", n), func(b *testing.B) {
			p := presence.New(redisstore.New(c, redisstore.WithPrefix(testPrefix(b, c))))
			defer p.Close()
			ctx := context.Background()
			users := make([]string, n+2)
			for i := range users {
				users[i] = "u" + strconv.Itoa(i)
				if err := p.Heartbeat(ctx, "room", users[i], benchTTL); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			callers(b, n, func(i int) {
				if err := p.Heartbeat(ctx, "room", users[i%len(users)], benchTTL); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkList lists a room of 100 viewers.
func BenchmarkList(b *testing.B) {
	c := sharedClient(b)
	p := presence.New(redisstore.New(c, redisstore.WithPrefix(testPrefix(b, c))))
	defer p.Close()
	ctx := context.Background()
	for i := range 100 {
		if err := p.Heartbeat(ctx, "room", "user-"+strconv.Itoa(i), benchTTL, presence.WithMeta([]byte(`{"name":"x"}`))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		vs, err := p.List(ctx, "room")
		if err != nil || len(vs) != 100 {
			b.Fatal(len(vs), err)
		}
	}
}

// BenchmarkCount counts a room of 100 viewers.
func BenchmarkCount(b *testing.B) {
	c := sharedClient(b)
	p := presence.New(redisstore.New(c, redisstore.WithPrefix(testPrefix(b, c))))
	defer p.Close()
	ctx := context.Background()
	for i := range 100 {
		if err := p.Heartbeat(ctx, "room", "user-"+strconv.Itoa(i), benchTTL); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if n, err := p.Count(ctx, "room"); err != nil || n != 100 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkMemory reports the Redis memory one presence takes: 100,000
// viewers in 1,000 rooms on a server of the benchmark's own.
func BenchmarkMemory(b *testing.B) {
	srv := startServer(b)
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), PoolSize: 64})
	defer c.Close()
	ctx := context.Background()
	used := func() int64 {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		b.Fatal("no used_memory")
		return 0
	}
	const rooms, viewers = 1000, 100_000
	for b.Loop() {
		if err := c.FlushAll(ctx).Err(); err != nil { // the benchmark's own server
			b.Fatal(err)
		}
		p := presence.New(redisstore.New(c))
		before := used()
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for i := w; i < viewers; i += 64 {
					if err := p.Heartbeat(ctx, "room-"+strconv.Itoa(i%rooms), "user-"+strconv.Itoa(i), benchTTL); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		after := used()
		p.Close()
		b.ReportMetric(float64(after-before)/viewers, "bytes/presence")
	}
}

// BenchmarkExpireIdle measures Expire on a store watching 200 rooms of
// one viewer each when nothing is due.
func BenchmarkExpireIdle(b *testing.B) {
	c := sharedClient(b)
	st := redisstore.New(c, redisstore.WithPrefix(testPrefix(b, c)))
	defer st.Close()
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	for i := range 200 {
		room := "room-" + strconv.Itoa(i)
		stop, err := st.Subscribe(ctx, room, func(presence.Event) {})
		if err != nil {
			b.Fatal(err)
		}
		defer stop()
		if err := st.Heartbeat(ctx, presence.Beat{Room: room, UserID: "u", Now: now, Deadline: now.Add(benchTTL)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := st.Expire(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
}
