package presence_test

import (
	"context"
	"fmt"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

func Example() {
	ctx := context.Background()
	p := presence.New(memstore.New())
	defer p.Close()

	p.Heartbeat(ctx, "project-x:session-42", "alice", 10*time.Second)
	p.Heartbeat(ctx, "project-x:session-42", "bob", 10*time.Second)
	p.Heartbeat(ctx, "project-x:session-42", "alice", 10*time.Second) // a refresh

	viewers, _ := p.List(ctx, "project-x:session-42")
	for _, v := range viewers {
		fmt.Println(v.UserID)
	}
	n, _ := p.Count(ctx, "project-x:session-42")
	fmt.Println(n, "watching")
	// Output:
	// alice
	// bob
	// 2 watching
}

// Expiry is driven by the Presence's clock, so a test advances a mock clock
// past the deadline instead of sleeping.
func Example_expiry() {
	ctx := context.Background()
	mock := clock.NewMock()
	p := presence.New(memstore.New(), presence.WithClock(mock))
	defer p.Close()

	events, _ := p.Watch(ctx, "lobby")
	snap := <-events
	fmt.Println(snap.Kind, "of", len(snap.Viewers), "viewers")

	p.Heartbeat(ctx, "lobby", "alice", 10*time.Second)
	ev := <-events
	fmt.Println(ev.Kind, ev.Viewer.UserID)

	mock.Add(10 * time.Second) // alice's deadline passes
	ev = <-events
	fmt.Println(ev.Kind, ev.Viewer.UserID, ev.Reason)

	n, _ := p.Count(ctx, "lobby")
	fmt.Println(n, "watching")
	// Output:
	// snapshot of 0 viewers
	// join alice
	// leave alice expired
	// 0 watching
}

// One user with two tabs counts once, and leaves with the last tab.
func Example_sessions() {
	ctx := context.Background()
	p := presence.New(memstore.New())
	defer p.Close()

	p.Heartbeat(ctx, "doc-7", "alice", time.Minute, presence.WithSession("tab-1"),
		presence.WithMeta([]byte(`{"name":"Alice"}`)))
	p.Heartbeat(ctx, "doc-7", "alice", time.Minute, presence.WithSession("tab-2"))

	viewers, _ := p.List(ctx, "doc-7")
	fmt.Println(viewers[0].UserID, viewers[0].Sessions, "sessions", string(viewers[0].Meta))

	p.LeaveSession(ctx, "doc-7", "alice", "tab-1")
	n, _ := p.Count(ctx, "doc-7")
	fmt.Println(n, "watching after one tab closed")

	p.LeaveSession(ctx, "doc-7", "alice", "tab-2")
	n, _ = p.Count(ctx, "doc-7")
	fmt.Println(n, "watching after both closed")
	// Output:
	// alice 2 sessions {"name":"Alice"}
	// 1 watching after one tab closed
	// 0 watching after both closed
}
