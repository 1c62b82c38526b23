package memstore

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/presence-go/presence"
)

// A refresh of a user's first session touches only the user's first cache
// line; the allocator keeps a 128-byte object on 64-byte boundaries.
func TestUserLayout(t *testing.T) {
	var u user
	if size := unsafe.Sizeof(u); size != 128 {
		t.Errorf("user is %d bytes, want 128", size)
	}
	if end := unsafe.Offsetof(u.lastSeen) + unsafe.Sizeof(u.lastSeen); end > 64 {
		t.Errorf("a refresh touches %d bytes of the user, want at most 64", end)
	}
}

// Random heartbeats, leaves and expiry keep the shards' structures
// consistent with one another.
func TestInvariants(t *testing.T) {
	ctx := context.Background()
	s := New()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.UnixMilli(1_900_000_000_000)
	pick := func(prefix string, n int) string { return prefix + strconv.Itoa(rng.IntN(n)) }
	sessions := []string{"", "a", "b", "c"}
	for step := range 20_000 {
		room, userID, ses := pick("r", 3), pick("u", 6), sessions[rng.IntN(len(sessions))]
		switch rng.IntN(10) {
		case 0, 1:
			s.Leave(ctx, room, userID, ses, now)
		case 2:
			s.Expire(ctx, now)
		default:
			d := time.Duration(1+rng.IntN(50)) * time.Millisecond
			err := s.Heartbeat(ctx, presence.Beat{Room: room, UserID: userID, SessionID: ses, Now: now, Deadline: now.Add(d)})
			if err != nil {
				t.Fatal(err)
			}
		}
		now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
		check(t, s, step)
	}
}

func check(t *testing.T, s *Store, step int) {
	t.Helper()
	for i := range s.shards {
		sh := &s.shards[i]
		inHeap := make(map[*session]bool)
		for j, ses := range sh.heap {
			if ses.index != j {
				t.Fatalf("step %d: heap[%d] has index %d", step, j, ses.index)
			}
			if ses.key > ses.deadline {
				t.Fatalf("step %d: key %d after deadline %d", step, ses.key, ses.deadline)
			}
			inHeap[ses] = true
		}
		n := 0
		for id, r := range sh.rooms {
			if r.id != id || len(r.users) != len(r.dense) {
				t.Fatalf("step %d: room %q: %d users, %d dense", step, id, len(r.users), len(r.dense))
			}
			for slot, u := range r.dense {
				if int(u.slot) != slot || u.room != r || r.users[u.id] != u {
					t.Fatalf("step %d: user %q misfiled", step, u.id)
				}
				count := 0
				for ses := &u.own; ses != nil; ses = ses.next {
					if ses.user != u || !inHeap[ses] {
						t.Fatalf("step %d: user %q: session %q not filed", step, u.id, ses.id)
					}
					count++
				}
				if count != int(u.sessions) {
					t.Fatalf("step %d: user %q has %d sessions, counts %d", step, u.id, count, u.sessions)
				}
				n += count
			}
		}
		if n != len(sh.heap) {
			t.Fatalf("step %d: %d sessions, %d in the heap", step, n, len(sh.heap))
		}
	}
}
