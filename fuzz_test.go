package presence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

// FuzzHeartbeat checks validation and the store's handling of arbitrary
// IDs: a heartbeat either fails with a sentinel and changes nothing, or
// makes exactly its user present in exactly its room, and never disturbs
// another room or user, however the IDs resemble each other.
func FuzzHeartbeat(f *testing.F) {
	f.Add("room", "user", "", int64(time.Second), []byte("meta"), "room2", "user")
	f.Add("a:b", "c", "tab", int64(time.Minute), []byte(nil), "a", "b:c")
	f.Add("{x}", "*", "\x00", int64(0), []byte{}, "{x", "}*")
	f.Add("", "u", "", int64(-1), []byte("x"), "r", "u")
	f.Add("\xff\xfe", "a\nb", "s", int64(time.Hour+1), []byte("m"), "\xff", "\xfea\nb")
	f.Fuzz(func(t *testing.T, room, user, session string, ttl int64, meta []byte, otherRoom, otherUser string) {
		ctx := context.Background()
		p := presence.New(memstore.New(), presence.WithClock(clock.NewMock()))
		defer p.Close()
		// A bystander who must never be disturbed.
		bystanderOK := p.Heartbeat(ctx, otherRoom, otherUser, time.Minute) == nil

		err := p.Heartbeat(ctx, room, user, time.Duration(ttl), presence.WithSession(session), presence.WithMeta(meta))
		accepted := err == nil
		if !accepted {
			for _, sentinel := range []error{presence.ErrInvalidRoom, presence.ErrInvalidUser,
				presence.ErrInvalidSession, presence.ErrInvalidTTL, presence.ErrMetaTooLarge} {
				if errors.Is(err, sentinel) {
					goto rejected
				}
			}
			t.Fatalf("Heartbeat error %v wraps no sentinel", err)
		rejected:
			if room != "" && len(room) <= 256 {
				if n, _ := p.Count(ctx, room); n != boolInt(bystanderOK && room == otherRoom) {
					t.Fatalf("rejected heartbeat changed room %q: count %d", room, n)
				}
			}
		} else {
			vs, err := p.List(ctx, room)
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			for _, v := range vs {
				if v.UserID == user {
					found++
					if string(v.Meta) != string(meta) {
						t.Fatalf("meta %q, want %q", v.Meta, meta)
					}
				} else if !(bystanderOK && room == otherRoom && v.UserID == otherUser) {
					t.Fatalf("room %q lists stranger %q", room, v.UserID)
				}
			}
			if found != 1 {
				t.Fatalf("user %q listed %d times in %q", user, found, room)
			}
		}
		if bystanderOK {
			vs, err := p.List(ctx, otherRoom)
			if err != nil {
				t.Fatal(err)
			}
			want := 1 + boolInt(accepted && room == otherRoom && user != otherUser)
			if len(vs) != want {
				t.Fatalf("bystander room %q has %d viewers, want %d", otherRoom, len(vs), want)
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
