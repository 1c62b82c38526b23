package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
)

// Several app servers, each running this, share one set of viewers and see
// each other's joins and leaves. The same code works with a
// *redis.ClusterClient or a Sentinel client.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()

	p := presence.New(redisstore.New(rdb, redisstore.WithPrefix("myapp:presence")))
	defer p.Close() // closes the store, not rdb

	ctx := context.Background()
	events, err := p.Watch(ctx, "doc-42")
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Heartbeat(ctx, "doc-42", "alice", 10*time.Second,
		presence.WithSession("tab-1"), presence.WithMeta([]byte(`{"name":"Alice"}`))); err != nil {
		log.Fatal(err)
	}
	n, err := p.Count(ctx, "doc-42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "viewing")
	for ev := range events {
		fmt.Println(ev.Kind, ev.Viewer.UserID)
		if ev.Kind == presence.Join {
			break
		}
	}
}
