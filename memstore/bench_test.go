package memstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

var (
	ctx   = context.Background()
	epoch = time.UnixMilli(1_900_000_000_000)
)

// populate puts users viewers, spread over rooms, into a new store, each
// with a deadline from deadline(i).
func populate(tb testing.TB, rooms, users int, deadline func(i int) time.Time) (*memstore.Store, []presence.Beat) {
	tb.Helper()
	s := memstore.New()
	beats := make([]presence.Beat, users)
	for i := range beats {
		beats[i] = presence.Beat{
			Room:     "room-" + strconv.Itoa(i%rooms),
			UserID:   "user-" + strconv.Itoa(i),
			Now:      epoch,
			Deadline: deadline(i),
		}
		if err := s.Heartbeat(ctx, beats[i]); err != nil {
			tb.Fatal(err)
		}
	}
	return s, beats
}

func in(d time.Duration) func(int) time.Time {
	return func(int) time.Time { return epoch.Add(d) }
}

// BenchmarkHeartbeatRefresh refreshes random viewers among 10,000 in 100
// rooms from every core.
func BenchmarkHeartbeatRefresh(b *testing.B) {
	s, beats := populate(b, 100, 10_000, in(time.Minute))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		for pb.Next() {
			bt := beats[r.IntN(len(beats))]
			bt.Deadline = epoch.Add(2 * time.Minute)
			if err := s.Heartbeat(ctx, bt); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHeartbeatJoin adds new viewers to 100 rooms.
func BenchmarkHeartbeatJoin(b *testing.B) {
	s := memstore.New()
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		err := s.Heartbeat(ctx, presence.Beat{Room: "room-" + strconv.Itoa(i%100), UserID: ids[i], Now: epoch, Deadline: epoch.Add(time.Minute)})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList100(b *testing.B) {
	s, _ := populate(b, 1, 100, in(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		vs, err := s.List(ctx, "room-0", epoch)
		if err != nil || len(vs) != 100 {
			b.Fatal(len(vs), err)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	s, _ := populate(b, 1, 100, in(time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		n, err := s.Count(ctx, "room-0", epoch)
		if err != nil || n != 100 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkExpire expires a share of 1,000,000 viewers in 10,000 rooms: the
// cost follows the share, not the total.
func BenchmarkExpire(b *testing.B) {
	const users, rooms = 1_000_000, 10_000
	for _, pct := range []int{1, 100} {
		b.Run(fmt.Sprintf("%dpct", pct), func(b *testing.B) {
			// Room i%rooms holds users i, i+rooms, ...: the first pct of
			// each room's hundred users expire.
			due := func(i int) bool { return i/rooms < pct }
			deadline := func(i int) time.Time {
				if due(i) {
					return epoch.Add(time.Second)
				}
				return epoch.Add(time.Hour)
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				s, _ := populate(b, rooms, users, deadline)
				b.StartTimer()
				if _, err := s.Expire(ctx, epoch.Add(time.Second)); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if n, _ := s.Count(ctx, "room-1", epoch); n != 100-pct {
					b.Fatalf("room-1 has %d viewers after expiry", n)
				}
				b.StartTimer()
			}
		})
	}
}
