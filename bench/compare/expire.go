package main

import (
	"context"
	"fmt"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/redisstore"
)

// expiry compares the cost of one Expire when 1% of cfg.expireViewers
// viewers are due against when all of them are, on each of our stores.
func (r *runner) expiry(ctx context.Context) error {
	n := r.cfg.expireViewers
	stores := []struct {
		name  string
		rooms int
		open  func(prefix string) presence.Store
	}{
		{"memstore", max(1, n/100), func(string) presence.Store { return memstore.New() }},
	}
	if r.env.client != nil {
		// Expire covers the rooms with a subscription, and each holds a
		// connection, so redisstore gets few, large rooms.
		stores = append(stores, struct {
			name  string
			rooms int
			open  func(prefix string) presence.Store
		}{"redisstore", min(100, n), func(prefix string) presence.Store {
			return redisstore.New(r.env.client, redisstore.WithPrefix(prefix))
		}})
	}
	for _, st := range stores {
		vs := viewers("expire", n, st.rooms)
		row := expireRow{system: st.name, viewers: n, rooms: st.rooms}
		for i, due := range []int{max(1, n/100), n} {
			prefix := r.env.nextPrefix()
			s := st.open(prefix)
			d, err := expireOnce(ctx, s, vs, due)
			if cerr := s.Close(); err == nil {
				err = cerr
			}
			if derr := r.env.deleteKeys(ctx, prefix); err == nil {
				err = derr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			r.logf("expire    %-10s %d of %d viewers due: %v", st.name, due, n, d)
			row.cost[i] = d
		}
		row.target = &target{text: "<=5%", met: row.ratio() <= 0.05}
		r.rep.expire = append(r.rep.expire, row)
	}
	return nil
}

// expireOnce makes vs present in s, the first due of them until a minute
// from now and the others for an hour, subscribes to every room (redisstore
// expires only those), and times one Expire a minute from now. It checks
// that the Expire left exactly the viewers not due.
func expireOnce(ctx context.Context, s presence.Store, vs []viewer, due int) (time.Duration, error) {
	t := now()
	err := parallel(len(vs), 256, func(i int) error {
		dl := t.Add(time.Hour)
		if i < due {
			dl = t.Add(time.Minute)
		}
		return s.Heartbeat(ctx, presence.Beat{Room: vs[i].room, UserID: vs[i].user, Now: t, Deadline: dl})
	})
	if err != nil {
		return 0, err
	}
	if sub, ok := s.(presence.Subscriber); ok {
		seen := make(map[string]bool)
		for _, v := range vs {
			if seen[v.room] {
				continue
			}
			seen[v.room] = true
			stop, err := sub.Subscribe(ctx, v.room, func(presence.Event) {})
			if err != nil {
				return 0, err
			}
			defer stop()
		}
	}

	start := time.Now()
	next, err := s.Expire(ctx, t.Add(time.Minute))
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	want := time.Time{}
	if due < len(vs) {
		want = t.Add(time.Hour)
	}
	if !next.Equal(want) {
		return 0, fmt.Errorf("Expire returned next %v, want %v", next, want)
	}
	room, left := vs[0].room, 0
	for i, v := range vs {
		if v.room == room && i >= due {
			left++
		}
	}
	n, err := s.Count(ctx, room, t.Add(time.Minute))
	if err != nil {
		return 0, err
	}
	if n != left {
		return 0, fmt.Errorf("after Expire, %d viewers in %s, want %d", n, room, left)
	}
	return d, nil
}
