package main

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"
)

// footprint measures the memory each presence costs at cfg.footprintViewers
// viewers, in rooms of 100 and in one room.
func (r *runner) footprint(ctx context.Context) error {
	n := r.cfg.footprintViewers
	kinds := r.available([]kind{memStore, memCentrifuge, redisStore, redisCentrifuge, redisBaseline})
	layouts := []struct {
		name  string
		rooms int
	}{
		{fmt.Sprintf("%s rooms of 100", group(max(1, n/100))), max(1, n/100)},
		{fmt.Sprintf("1 room of %s", group(n)), 1},
	}
	for _, l := range layouts {
		vs := viewers("bytes", n, l.rooms)
		for i := range vs {
			// centrifuge's Client passes a new ClientInfo to every
			// AddPresence, and the manager keeps it: it counts.
			vs[i].info = nil
		}
		rows := make([]bytesRow, len(kinds))
		for i, k := range kinds {
			heap, server, err := r.bytesPerPresence(ctx, k, vs)
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			r.logf("bytes     %-6s %-22s %-20s %8.1f Go heap %8.1f Redis", where(k), l.name, k.name, heap, server)
			rows[i] = bytesRow{layout: l.name, place: where(k), system: k.name, heap: heap, server: server}
		}
		for i, k := range kinds {
			if !k.ours {
				continue
			}
			for j, o := range kinds {
				if o.redis != k.redis {
					continue
				}
				v := rows[i].value()
				switch o.name {
				case "centrifuge":
					rows[i].vsPeer = ratio(v, rows[j].value())
				case "go-redis":
					rows[i].vsBase = ratio(v, rows[j].value())
				}
			}
			if k.redis && l.rooms > 1 {
				rows[i].target = &target{text: "<=1.0x", met: rows[i].vsPeer <= 1}
			}
		}
		r.rep.bytes = append(r.rep.bytes, rows...)
	}
	return nil
}

// bytesPerPresence makes every viewer of vs present in a new instance of
// k and returns the growth, per viewer, of the Go heap after a collection
// and of the Redis server's used_memory (0 in memory).
func (r *runner) bytesPerPresence(ctx context.Context, k kind, vs []viewer) (heap, server float64, err error) {
	var before, after runtime.MemStats
	usedBefore, err := r.usedMemory(ctx, k)
	if err != nil {
		return 0, 0, err
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	c, err := r.open(k)
	if err != nil {
		return 0, 0, err
	}
	err = populate(ctx, c.sys, vs, redisCallers)
	runtime.GC()
	runtime.ReadMemStats(&after)
	usedAfter, uerr := r.usedMemory(ctx, k)
	if err == nil {
		err = uerr
	}
	runtime.KeepAlive(c.sys)
	if derr := r.discard(ctx, c); err == nil {
		err = derr
	}
	if err != nil {
		return 0, 0, err
	}
	n := float64(len(vs))
	heap = (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / n
	server = float64(usedAfter-usedBefore) / n
	return heap, server, nil
}

// usedMemory returns the Redis server's used_memory, or 0 for a kind that
// does not use Redis.
func (r *runner) usedMemory(ctx context.Context, k kind) (int64, error) {
	if !k.redis {
		return 0, nil
	}
	// Deleted keys are freed in the background: wait until they are, so
	// that the figure moves only with what the run adds.
	for try := 0; ; try++ {
		info, err := r.env.client.Info(ctx, "memory").Result()
		if err != nil {
			return 0, err
		}
		if infoField(info, "lazyfree_pending_objects") == "0" || try == 100 {
			return strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
