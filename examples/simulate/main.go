// Command simulate shows presence at work on the in-memory store: simulated
// viewers join a room, keep themselves present with heartbeats, and then
// either leave or simply stop (a closed laptop), expiring at their deadline.
// It prints every change a watcher sees and the live count each second.
//
//	go run ./examples/simulate
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

func main() {
	viewers := flag.Int("viewers", 8, "simulated viewers")
	duration := flag.Duration("duration", 6*time.Second, "how long to run")
	ttl := flag.Duration("ttl", time.Second, "heartbeat TTL")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	p := presence.New(memstore.New())
	defer p.Close()
	const room = "feed:launch-day"

	events, err := p.Watch(ctx, room)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range events {
			at := time.Since(start).Truncate(10 * time.Millisecond)
			switch ev.Kind {
			case presence.Snapshot, presence.Resync:
				fmt.Printf("%6v %-8v %d viewers\n", at, ev.Kind, len(ev.Viewers))
			case presence.Leave:
				fmt.Printf("%6v %-8v %s (%v)\n", at, ev.Kind, ev.Viewer.UserID, ev.Reason)
			default:
				fmt.Printf("%6v %-8v %s %s\n", at, ev.Kind, ev.Viewer.UserID, ev.Viewer.Meta)
			}
		}
	})

	for i := range *viewers {
		wg.Go(func() { viewer(ctx, p, room, fmt.Sprintf("viewer-%d", i), *ttl) })
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			n, err := p.Count(ctx, room)
			if err == nil {
				fmt.Printf("%6v watching: %d\n", time.Since(start).Truncate(time.Second), n)
			}
		}
	}
}

// viewer arrives after a random delay, heartbeats for a while at a third of
// the TTL, and then leaves or goes silent.
func viewer(ctx context.Context, p *presence.Presence, room, id string, ttl time.Duration) {
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	if !wait(rand.N(2 * time.Second)) {
		return
	}
	meta := []byte(fmt.Sprintf(`{"name":%q}`, id))
	stay := time.Now().Add(time.Second + rand.N(3*time.Second))
	for time.Now().Before(stay) {
		if err := p.Heartbeat(ctx, room, id, ttl, presence.WithMeta(meta)); err != nil {
			return
		}
		if !wait(ttl / 3) {
			return
		}
	}
	if rand.N(2) == 0 {
		p.Leave(ctx, room, id) // a tidy exit; otherwise the TTL ends it
	}
}
