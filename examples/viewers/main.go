// Command viewers is a live event-feed page that shows who is watching:
// a "N watching" badge and a face pile of the room's viewers, kept live by
// presencehttp and its JavaScript client.
//
//	go run ./examples/viewers
//
// prints the URL to open; open it in several tabs or browsers, or name a
// room with /room/NAME. It keeps presence in memory unless given a Redis
// URL (-redis, or the REDIS_URL environment variable): then every instance
// on that Redis shows the same viewers, for example
//
//	go run ./examples/viewers -redis redis://127.0.0.1:6379 -addr 127.0.0.1:8080
//	go run ./examples/viewers -redis redis://127.0.0.1:6379 -addr 127.0.0.1:8081
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/examples/viewers/internal/app"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/presencehttp"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	ttl := flag.Duration("ttl", presencehttp.DefaultTTL, "how long a viewer stays present after its last heartbeat")
	redisURL := flag.String("redis", os.Getenv("REDIS_URL"), "Redis URL such as redis://127.0.0.1:6379/0 to share presence between instances (default: in memory; env REDIS_URL)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *ttl, *redisURL); err != nil {
		log.Fatal("viewers: ", err)
	}
}

func run(ctx context.Context, addr string, ttl time.Duration, redisURL string) error {
	store, where, closeStore, err := openStore(ctx, redisURL)
	if err != nil {
		return err
	}
	defer closeStore()
	p := presence.New(store)
	defer p.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.New(p, ttl), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("viewers: presence %s, TTL %v\nviewers: open http://%s/room/lobby\n", where, ttl, browsable(ln.Addr()))

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Closing the Presence first ends the event streams, which would
	// otherwise keep Shutdown waiting.
	p.Close()
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openStore returns the in-memory store, or a Redis store when url is set.
func openStore(ctx context.Context, url string) (s presence.Store, where string, close func(), err error) {
	if url == "" {
		return memstore.New(), "in memory", func() {}, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-redis: %w", err)
	}
	client := redis.NewClient(opt)
	ping, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(ping).Err(); err != nil {
		client.Close()
		return nil, "", nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	return redisstore.New(client), "on redis " + opt.Addr, func() { client.Close() }, nil
}

// browsable returns addr as a host:port a browser can open.
func browsable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
