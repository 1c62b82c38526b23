//go:build !race

package presence_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
)

// A refreshing heartbeat, options included, allocates nothing.
func TestRefreshAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	p := presence.New(memstore.New())
	defer p.Close()
	meta := []byte(`{"name":"Alice"}`)
	if err := p.Heartbeat(ctx, "room", "alice", time.Minute, presence.WithSession("tab"), presence.WithMeta(meta)); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := p.Heartbeat(ctx, "room", "alice", time.Minute, presence.WithSession("tab"), presence.WithMeta(meta)); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("refresh allocates %v times, want 0", allocs)
	}
}
