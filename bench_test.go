package presence_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

// BenchmarkHeartbeatRefresh measures the whole public path (validation,
// clock, store, expiry arming) for refreshes of 10,000 viewers in 100 rooms
// from every core.
func BenchmarkHeartbeatRefresh(b *testing.B) {
	ctx := context.Background()
	p := presence.New(memstore.New())
	defer p.Close()
	const users = 10_000
	ids := make([]string, users)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
		if err := p.Heartbeat(ctx, "room-"+strconv.Itoa(i%100), ids[i], time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	rooms := make([]string, 100)
	for i := range rooms {
		rooms[i] = "room-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(users) // callers start apart, as real ones do
		for pb.Next() {
			i = (i + 7919) % users
			if err := p.Heartbeat(ctx, rooms[i%100], ids[i], time.Minute, presence.WithSession("tab")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
