package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-go/presence"
)

const ttl = 10 * time.Second

func testHeartbeatIsIdempotent(t *testing.T, e *env) {
	p := e.presence(t)
	first := e.mock.Now()
	beat(t, p, "r", "alice", ttl)
	e.mock.Add(3 * time.Second)
	beat(t, p, "r", "alice", ttl)
	vs := list(t, p, "r", "alice")
	v := vs[0]
	sameTime(t, "FirstSeen", v.FirstSeen, first)
	sameTime(t, "LastSeen", v.LastSeen, e.mock.Now())
	sameTime(t, "Deadline", v.Deadline, e.mock.Now().Add(ttl))
	if v.Sessions != 1 {
		t.Fatalf("Sessions = %d, want 1", v.Sessions)
	}
	// The refresh moved the deadline: the user outlives the first one.
	e.mock.Add(ttl - time.Second)
	list(t, p, "r", "alice")
	e.mock.Add(time.Second)
	list(t, p, "r")
}

func testSessions(t *testing.T, e *env) {
	p := e.presence(t)
	beat(t, p, "r", "alice", ttl, presence.WithSession("tab1"))
	beat(t, p, "r", "alice", ttl, presence.WithSession("tab2"))
	beat(t, p, "r", "bob", ttl)
	vs := list(t, p, "r", "alice", "bob")
	if vs[0].Sessions != 2 || vs[1].Sessions != 1 {
		t.Fatalf("Sessions = %d, %d, want 2, 1", vs[0].Sessions, vs[1].Sessions)
	}
	ch := e.watch(t, p, "r", "alice", "bob")

	leaveSession(t, p, "r", "alice", "tab1")
	vs = list(t, p, "r", "alice", "bob")
	if vs[0].Sessions != 1 {
		t.Fatalf("Sessions after one tab left = %d, want 1", vs[0].Sessions)
	}
	leaveSession(t, p, "r", "alice", "tab1") // again: nothing changes
	leaveSession(t, p, "r", "alice", "tab2")
	e.expect(t, ch, presence.Leave, "alice", presence.Left)
	list(t, p, "r", "bob")

	// Leave ends every session at once.
	beat(t, p, "r", "carol", ttl, presence.WithSession("a"))
	e.expect(t, ch, presence.Join, "carol", 0)
	beat(t, p, "r", "carol", ttl, presence.WithSession("b"))
	beat(t, p, "r", "carol", ttl)
	leave(t, p, "r", "carol")
	e.expect(t, ch, presence.Leave, "carol", presence.Left)
	list(t, p, "r", "bob")
}

func testSessionsExpireSeparately(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	beat(t, p, "r", "alice", 5*time.Second, presence.WithSession("phone"))
	e.expect(t, ch, presence.Join, "alice", 0)
	beat(t, p, "r", "alice", 20*time.Second, presence.WithSession("laptop"))
	e.mock.Add(5 * time.Second)
	vs := list(t, p, "r", "alice")
	if vs[0].Sessions != 1 {
		t.Fatalf("Sessions after the phone expired = %d, want 1", vs[0].Sessions)
	}
	sameTime(t, "Deadline", vs[0].Deadline, epoch.Add(20*time.Second))
	e.mock.Add(15 * time.Second)
	ev := e.expect(t, ch, presence.Leave, "alice", presence.Expired)
	sameTime(t, "leave Time", ev.Time, epoch.Add(20*time.Second))
	list(t, p, "r")
}

func testMetadata(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	meta := []byte(`{"name":"Alice"}`)
	beat(t, p, "r", "alice", ttl, presence.WithMeta(meta))
	ev := e.expect(t, ch, presence.Join, "alice", 0)
	if !bytes.Equal(ev.Viewer.Meta, meta) {
		t.Fatalf("join Meta = %q, want %q", ev.Viewer.Meta, meta)
	}
	meta[2] = 'X' // the store must have copied it
	if vs := list(t, p, "r", "alice"); string(vs[0].Meta) != `{"name":"Alice"}` {
		t.Fatalf("Meta = %q after the caller changed its slice", vs[0].Meta)
	}

	// Without WithMeta the metadata is kept; the same metadata is no
	// change; new metadata is an Update.
	beat(t, p, "r", "alice", ttl)
	beat(t, p, "r", "alice", ttl, presence.WithMeta([]byte(`{"name":"Alice"}`)))
	beat(t, p, "r", "alice", ttl, presence.WithMeta([]byte(`{"name":"Al"}`)))
	ev = e.expect(t, ch, presence.Update, "alice", 0)
	if string(ev.Viewer.Meta) != `{"name":"Al"}` {
		t.Fatalf("update Meta = %q", ev.Viewer.Meta)
	}
	if vs := list(t, p, "r", "alice"); string(vs[0].Meta) != `{"name":"Al"}` {
		t.Fatalf("Meta = %q, want the update", vs[0].Meta)
	}

	// Another session's heartbeat sets the user's one metadata.
	beat(t, p, "r", "alice", ttl, presence.WithSession("tab"), presence.WithMeta(nil))
	ev = e.expect(t, ch, presence.Update, "alice", 0)
	if len(ev.Viewer.Meta) != 0 {
		t.Fatalf("cleared Meta = %q", ev.Viewer.Meta)
	}
	if vs := list(t, p, "r", "alice"); len(vs[0].Meta) != 0 {
		t.Fatalf("Meta = %q after clearing", vs[0].Meta)
	}
	// Leave carries the user's last metadata.
	beat(t, p, "r", "alice", ttl, presence.WithMeta([]byte("last")))
	e.expect(t, ch, presence.Update, "alice", 0)
	ev = func() presence.Event {
		leave(t, p, "r", "alice")
		return e.expect(t, ch, presence.Leave, "alice", presence.Left)
	}()
	if string(ev.Viewer.Meta) != "last" {
		t.Fatalf("leave Meta = %q, want %q", ev.Viewer.Meta, "last")
	}
}

func testListOrder(t *testing.T, e *env) {
	p := e.presence(t)
	// Joined in this order, at distinct times, except dave and carl who
	// join in the same millisecond: they sort by user ID.
	for _, u := range []string{"zed", "bob", "yan"} {
		beat(t, p, "r", u, time.Minute)
		e.mock.Add(time.Second)
	}
	beat(t, p, "r", "dave", time.Minute)
	beat(t, p, "r", "carl", time.Minute)
	e.mock.Add(time.Second)
	beat(t, p, "r", "bob", time.Minute) // a refresh does not move bob
	want := []string{"zed", "bob", "yan", "carl", "dave"}
	list(t, p, "r", want...)
	list(t, p, "r", want...)

	// A user who leaves and comes back joins at the end.
	leave(t, p, "r", "zed")
	beat(t, p, "r", "zed", time.Minute)
	list(t, p, "r", "bob", "yan", "carl", "dave", "zed")
}

func testExpiryAtDeadline(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	beat(t, p, "r", "alice", ttl)
	beat(t, p, "r", "alice", ttl)
	e.expect(t, ch, presence.Join, "alice", 0)
	list(t, p, "r", "alice")

	e.mock.Add(ttl - time.Millisecond)
	list(t, p, "r", "alice")
	e.mock.Add(time.Millisecond)
	ev := e.expect(t, ch, presence.Leave, "alice", presence.Expired)
	sameTime(t, "leave Time", ev.Time, epoch.Add(ttl))
	list(t, p, "r")

	// Exactly once: a later join is the next event, not a second leave.
	e.mock.Add(time.Hour)
	beat(t, p, "r", "bob", ttl)
	e.expect(t, ch, presence.Join, "bob", 0)
}

// One advance past several deadlines, with no read to help, delivers
// every departure: expiry is driven by the timer alone.
func testExpiryWithoutReads(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	want := map[string]bool{}
	for i, d := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second} {
		u := fmt.Sprint("u", i)
		beat(t, p, "r", u, d)
		e.expect(t, ch, presence.Join, u, 0)
		want[u] = true
	}
	e.mock.Add(time.Minute)
	for len(want) > 0 {
		ev := e.next(t, ch)
		if ev.Kind != presence.Leave || ev.Reason != presence.Expired || !want[ev.Viewer.UserID] {
			t.Fatalf("event = %v %q %v, want the expiry of one of %v", ev.Kind, ev.Viewer.UserID, ev.Reason, want)
		}
		delete(want, ev.Viewer.UserID)
	}
}

func testReadsHideExpired(t *testing.T, e *env) {
	st := e.suite.New(t, e.ns)
	defer st.Close()
	ctx := context.Background()
	now := epoch
	b := presence.Beat{Room: "r", UserID: "alice", Now: now, Deadline: now.Add(ttl)}
	if err := st.Heartbeat(ctx, b); err != nil {
		t.Fatal(err)
	}
	b.UserID, b.Deadline = "bob", now.Add(2*ttl)
	if err := st.Heartbeat(ctx, b); err != nil {
		t.Fatal(err)
	}
	// Nothing called Expire, yet the reads must not report alice.
	later := now.Add(ttl)
	vs, err := st.List(ctx, "r", later)
	if err != nil {
		t.Fatal(err)
	}
	checkUsers(t, "List", vs, "bob")
	v := vs[0]
	sameTime(t, "FirstSeen", v.FirstSeen, now)
	sameTime(t, "LastSeen", v.LastSeen, now)
	sameTime(t, "Deadline", v.Deadline, now.Add(2*ttl))
	if n, err := st.Count(ctx, "r", later); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	if vs, err := st.List(ctx, "unknown", later); err != nil || len(vs) != 0 {
		t.Fatalf("List of an unknown room = %v, %v; want empty", vs, err)
	}
}

func testExpireReportsNextDeadline(t *testing.T, e *env) {
	st := e.suite.New(t, e.ns)
	defer st.Close()
	ctx := context.Background()
	if sub, ok := st.(presence.Subscriber); ok {
		// A shared store need only expire subscribed rooms.
		stop, err := sub.Subscribe(ctx, "r", func(presence.Event) {})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	for i, d := range []time.Duration{3 * time.Second, time.Second, 2 * time.Second} {
		b := presence.Beat{Room: "r", UserID: fmt.Sprint("u", i), Now: epoch, Deadline: epoch.Add(d)}
		if err := st.Heartbeat(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		now, next time.Duration
		left      int
	}{
		{0, time.Second, 3},
		{time.Second, 2 * time.Second, 2},
		{2500 * time.Millisecond, 3 * time.Second, 1},
		{3 * time.Second, 0, 0},
	} {
		next, err := st.Expire(ctx, epoch.Add(step.now))
		if err != nil {
			t.Fatal(err)
		}
		if step.next == 0 {
			if !next.IsZero() {
				t.Fatalf("Expire at +%v: next = %v, want zero", step.now, next)
			}
		} else {
			sameTime(t, fmt.Sprintf("Expire at +%v: next", step.now), next, epoch.Add(step.next))
		}
		if n, err := st.Count(ctx, "r", epoch.Add(step.now)); err != nil || n != step.left {
			t.Fatalf("Count at +%v = %d, %v; want %d", step.now, n, err, step.left)
		}
	}
}

func testRejoinAfterExpiry(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	beat(t, p, "r", "alice", ttl)
	e.expect(t, ch, presence.Join, "alice", 0)
	e.mock.Add(ttl)
	e.expect(t, ch, presence.Leave, "alice", presence.Expired)
	e.mock.Add(time.Second)
	beat(t, p, "r", "alice", ttl)
	ev := e.expect(t, ch, presence.Join, "alice", 0)
	sameTime(t, "FirstSeen after rejoin", ev.Viewer.FirstSeen, e.mock.Now())
	vs := list(t, p, "r", "alice")
	sameTime(t, "FirstSeen after rejoin", vs[0].FirstSeen, e.mock.Now())
}

func testLeave(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	leave(t, p, "r", "ghost") // absent: no error, no event
	beat(t, p, "r", "alice", ttl)
	e.expect(t, ch, presence.Join, "alice", 0)
	leave(t, p, "r", "alice")
	e.expect(t, ch, presence.Leave, "alice", presence.Left)
	leave(t, p, "r", "alice")
	list(t, p, "r")
	// The left user's deadline passing reports nothing more.
	e.mock.Add(2 * ttl)
	beat(t, p, "r", "bob", ttl)
	e.expect(t, ch, presence.Join, "bob", 0)
}

func testRoomsAreSeparate(t *testing.T, e *env) {
	p := e.presence(t)
	a := e.watch(t, p, "a")
	beat(t, p, "a", "alice", ttl)
	beat(t, p, "b", "alice", 2*ttl)
	beat(t, p, "b", "bob", ttl)
	e.expect(t, a, presence.Join, "alice", 0)
	list(t, p, "a", "alice")
	list(t, p, "b", "alice", "bob")
	leave(t, p, "b", "alice")
	list(t, p, "a", "alice")
	e.mock.Add(ttl)
	e.expect(t, a, presence.Leave, "alice", presence.Expired)
	list(t, p, "b")
}

func testWatchEvents(t *testing.T, e *env) {
	p := e.presence(t)
	beat(t, p, "r", "alice", ttl, presence.WithMeta([]byte("A")))
	ch := e.watch(t, p, "r", "alice")
	other := e.watch(t, p, "r", "alice")

	beat(t, p, "r", "alice", ttl) // a refresh: no event
	beat(t, p, "r", "bob", ttl, presence.WithMeta([]byte("B")))
	ev := e.expect(t, ch, presence.Join, "bob", 0)
	if ev.Room != "r" || string(ev.Viewer.Meta) != "B" || ev.Viewer.Sessions != 1 {
		t.Fatalf("join = %+v", ev)
	}
	sameTime(t, "join Time", ev.Time, e.mock.Now())
	sameTime(t, "join Deadline", ev.Viewer.Deadline, e.mock.Now().Add(ttl))
	beat(t, p, "r", "bob", ttl, presence.WithMeta([]byte("B2")))
	e.expect(t, ch, presence.Update, "bob", 0)
	leave(t, p, "r", "alice")
	e.expect(t, ch, presence.Leave, "alice", presence.Left)

	// Every watcher sees the same stream.
	e.expect(t, other, presence.Join, "bob", 0)
	e.expect(t, other, presence.Update, "bob", 0)
	e.expect(t, other, presence.Leave, "alice", presence.Left)

	// A new watcher starts from the current state.
	e.watch(t, p, "r", "bob")
}

func testWatchLagResyncs(t *testing.T, e *env) {
	p := e.presence(t, presence.WithWatchBuffer(4))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := p.Watch(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	// The watcher reads nothing while 20 users join and 5 leave.
	var want []string
	for i := range 20 {
		u := fmt.Sprintf("u%02d", i)
		beat(t, p, "r", u, ttl)
		if i%4 == 0 {
			leave(t, p, "r", u)
		} else {
			want = append(want, u)
		}
	}
	// It then rebuilds the true state from what it receives: the snapshot,
	// a resync once it is known to have missed changes, and events.
	state := map[string]bool{}
	sawResync := false
	deadline := time.After(e.suite.Timeout)
	for len(state) != len(want) || !sawResync {
		var ev presence.Event
		select {
		case ev = <-ch:
		case <-deadline:
			t.Fatalf("state %d users, resync %v; want %d users after a resync", len(state), sawResync, len(want))
		}
		switch ev.Kind {
		case presence.Snapshot, presence.Resync:
			sawResync = sawResync || ev.Kind == presence.Resync
			clear(state)
			for _, v := range ev.Viewers {
				state[v.UserID] = true
			}
		case presence.Join:
			state[ev.Viewer.UserID] = true
		case presence.Leave:
			if !state[ev.Viewer.UserID] {
				t.Fatalf("leave of %q, which the watcher does not hold", ev.Viewer.UserID)
			}
			delete(state, ev.Viewer.UserID)
		}
	}
	for _, u := range want {
		if !state[u] {
			t.Fatalf("watcher state lacks %q", u)
		}
	}
	// Events flow again after the resync.
	beat(t, p, "r", "late", ttl)
	for {
		ev := e.next(t, ch)
		if ev.Kind == presence.Join && ev.Viewer.UserID == "late" {
			break
		}
		if ev.Kind == presence.Leave {
			t.Fatalf("unexpected leave of %q", ev.Viewer.UserID)
		}
	}
}

func testWatchEndsWithContext(t *testing.T, e *env) {
	p := e.presence(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := p.Watch(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	e.closed(t, ch)
	// Watching again works, and another room is unaffected.
	ch = e.watch(t, p, "r")
	beat(t, p, "r", "alice", ttl)
	e.expect(t, ch, presence.Join, "alice", 0)
}

func testConcurrent(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	const workers, users = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for i := range 200 {
				u := fmt.Sprintf("u%d", (w*7+i)%users)
				var err error
				switch i % 5 {
				case 3:
					err = p.Leave(ctx, "r", u)
				case 4:
					_, err = p.List(ctx, "r")
				default:
					err = p.Heartbeat(ctx, "r", u, ttl, presence.WithSession(fmt.Sprint(w)),
						presence.WithMeta([]byte{byte(i % 3)}))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs, err := p.List(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, v := range vs {
		want[v.UserID] = true
	}
	// The watcher's state converges on the store's; a marker user tells
	// when every earlier change has been delivered.
	beat(t, p, "r", "marker", ttl)
	want["marker"] = true
	state := map[string]bool{}
	for !state["marker"] {
		ev := e.next(t, ch)
		switch ev.Kind {
		case presence.Join, presence.Update:
			state[ev.Viewer.UserID] = true
		case presence.Leave:
			if !state[ev.Viewer.UserID] {
				t.Fatalf("leave of %q, which the watcher does not hold", ev.Viewer.UserID)
			}
			delete(state, ev.Viewer.UserID)
		case presence.Resync:
			clear(state)
			for _, v := range ev.Viewers {
				state[v.UserID] = true
			}
		}
	}
	if fmt.Sprint(state) != fmt.Sprint(want) {
		t.Fatalf("watcher state %v, store %v", state, want)
	}
}

func testBadInput(t *testing.T, e *env) {
	p := e.presence(t)
	ch := e.watch(t, p, "r")
	ctx := context.Background()
	long := strings.Repeat("x", 257)
	big := make([]byte, 4097)
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"empty room", func() error { return p.Heartbeat(ctx, "", "u", ttl) }, presence.ErrInvalidRoom},
		{"long room", func() error { return p.Heartbeat(ctx, long, "u", ttl) }, presence.ErrInvalidRoom},
		{"empty user", func() error { return p.Heartbeat(ctx, "r", "", ttl) }, presence.ErrInvalidUser},
		{"long user", func() error { return p.Heartbeat(ctx, "r", long, ttl) }, presence.ErrInvalidUser},
		{"long session", func() error { return p.Heartbeat(ctx, "r", "u", ttl, presence.WithSession(long)) }, presence.ErrInvalidSession},
		{"zero ttl", func() error { return p.Heartbeat(ctx, "r", "u", 0) }, presence.ErrInvalidTTL},
		{"negative ttl", func() error { return p.Heartbeat(ctx, "r", "u", -time.Second) }, presence.ErrInvalidTTL},
		{"sub-ms ttl", func() error { return p.Heartbeat(ctx, "r", "u", time.Microsecond) }, presence.ErrInvalidTTL},
		{"huge ttl", func() error { return p.Heartbeat(ctx, "r", "u", 1000*time.Hour) }, presence.ErrInvalidTTL},
		{"big meta", func() error { return p.Heartbeat(ctx, "r", "u", ttl, presence.WithMeta(big)) }, presence.ErrMetaTooLarge},
		{"leave empty room", func() error { return p.Leave(ctx, "", "u") }, presence.ErrInvalidRoom},
		{"leave empty user", func() error { return p.Leave(ctx, "r", "") }, presence.ErrInvalidUser},
		{"leave empty session", func() error { return p.LeaveSession(ctx, "r", "u", "") }, presence.ErrInvalidSession},
		{"list empty room", func() error { _, err := p.List(ctx, ""); return err }, presence.ErrInvalidRoom},
		{"count long room", func() error { _, err := p.Count(ctx, long); return err }, presence.ErrInvalidRoom},
		{"watch empty room", func() error { _, err := p.Watch(ctx, ""); return err }, presence.ErrInvalidRoom},
	}
	for _, c := range cases {
		err := c.call()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	// Nothing changed: the room is empty and the first event is this join.
	list(t, p, "r")
	beat(t, p, "r", "ok", ttl)
	e.expect(t, ch, presence.Join, "ok", 0)
	list(t, p, "r", "ok")
}

// hostileIDs are IDs that break naive key encodings.
var hostileIDs = []string{
	"a:b", "a", "a:", ":b", "{x}", "{", "}", "*", "?", "[a]", "a\nb", "\x00", "a\x00b",
	"\xff\xfe", "é", "a b", "%", "%3A", "\\", "/", "presence", "r", " ",
}

func testHostileIDs(t *testing.T, e *env) {
	p := e.presence(t)
	// Every hostile room holds exactly the hostile users heartbeated
	// into it; rooms and users never bleed into one another.
	for i, room := range hostileIDs {
		for j, user := range hostileIDs {
			if (i+j)%3 == 0 {
				beat(t, p, room, user, ttl, presence.WithSession(hostileIDs[(i*j)%len(hostileIDs)]))
			}
		}
	}
	for i, room := range hostileIDs {
		vs, err := p.List(context.Background(), room)
		if err != nil {
			t.Fatalf("List(%q): %v", room, err)
		}
		got := map[string]bool{}
		for _, v := range vs {
			got[v.UserID] = true
		}
		for j, user := range hostileIDs {
			if want := (i+j)%3 == 0; got[user] != want {
				t.Fatalf("room %q: user %q present = %v, want %v", room, user, got[user], want)
			}
		}
		if len(got) != len(vs) {
			t.Fatalf("room %q lists a user twice: %d viewers, %d users", room, len(vs), len(got))
		}
	}
}

func testRoomCap(t *testing.T, e *env) {
	p := e.presence(t, presence.WithMaxViewers(2))
	ch := e.watch(t, p, "r")
	beat(t, p, "r", "alice", ttl)
	beat(t, p, "r", "bob", ttl)
	err := p.Heartbeat(context.Background(), "r", "carol", ttl)
	if !errors.Is(err, presence.ErrRoomFull) {
		t.Fatalf("third join: err = %v, want ErrRoomFull", err)
	}
	// Present users refresh, add sessions and change metadata.
	beat(t, p, "r", "alice", ttl, presence.WithSession("tab2"), presence.WithMeta([]byte("A")))
	list(t, p, "r", "alice", "bob")
	e.expect(t, ch, presence.Join, "alice", 0)
	e.expect(t, ch, presence.Join, "bob", 0)
	e.expect(t, ch, presence.Update, "alice", 0)
	// Another room is not affected; a departure makes room.
	beat(t, p, "other", "carol", ttl)
	leave(t, p, "r", "bob")
	e.expect(t, ch, presence.Leave, "bob", presence.Left)
	beat(t, p, "r", "carol", ttl)
	e.expect(t, ch, presence.Join, "carol", 0)
	list(t, p, "r", "alice", "carol")
	// Concurrent joins never overfill the room.
	e.mock.Add(ttl)
	gone := map[string]bool{}
	for range 2 {
		ev := e.next(t, ch)
		if ev.Kind != presence.Leave || ev.Reason != presence.Expired {
			t.Fatalf("event = %v %q %v, want an expiry", ev.Kind, ev.Viewer.UserID, ev.Reason)
		}
		gone[ev.Viewer.UserID] = true
	}
	if !gone["alice"] || !gone["carol"] {
		t.Fatalf("expired %v, want alice and carol", gone)
	}
	var wg sync.WaitGroup
	full := make(chan struct{}, 10)
	for i := range 10 {
		wg.Go(func() {
			err := p.Heartbeat(context.Background(), "r", fmt.Sprint("u", i), ttl)
			if errors.Is(err, presence.ErrRoomFull) {
				full <- struct{}{}
			} else if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(full) != 8 {
		t.Fatalf("%d of 10 concurrent joins refused, want 8", len(full))
	}
	if n, err := p.Count(context.Background(), "r"); err != nil || n != 2 {
		t.Fatalf("Count = %d, %v; want 2", n, err)
	}
}

func testSessionCap(t *testing.T, e *env) {
	p := e.presence(t, presence.WithLimits(presence.Limits{MaxSessions: 2}))
	ctx := context.Background()
	beat(t, p, "r", "alice", ttl, presence.WithSession("a"))
	beat(t, p, "r", "alice", ttl, presence.WithSession("b"))
	err := p.Heartbeat(ctx, "r", "alice", ttl, presence.WithSession("c"), presence.WithMeta([]byte("x")))
	if !errors.Is(err, presence.ErrTooManySessions) {
		t.Fatalf("third session: err = %v, want ErrTooManySessions", err)
	}
	vs := list(t, p, "r", "alice")
	if vs[0].Sessions != 2 || len(vs[0].Meta) != 0 {
		t.Fatalf("after a refused session: %d sessions, meta %q; want 2 and none", vs[0].Sessions, vs[0].Meta)
	}
	beat(t, p, "r", "alice", ttl, presence.WithSession("a")) // refreshes pass
	beat(t, p, "r", "bob", ttl, presence.WithSession("c"))   // per user
	leaveSession(t, p, "r", "alice", "b")
	beat(t, p, "r", "alice", ttl, presence.WithSession("c"))
	// Expired sessions free their places.
	e.mock.Add(ttl)
	beat(t, p, "r", "alice", ttl, presence.WithSession("d"))
	beat(t, p, "r", "alice", ttl, presence.WithSession("e"))
	vs = list(t, p, "r", "alice")
	if vs[0].Sessions != 2 {
		t.Fatalf("Sessions = %d, want 2", vs[0].Sessions)
	}
}

func testUseAfterClose(t *testing.T, e *env) {
	st := e.suite.New(t, e.ns)
	p := presence.New(st, presence.WithClock(e.mock))
	ctx := context.Background()
	beat(t, p, "r", "alice", ttl)
	ch, err := p.Watch(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	e.closed(t, ch)
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	calls := map[string]error{
		"Heartbeat":    p.Heartbeat(ctx, "r", "alice", ttl),
		"Leave":        p.Leave(ctx, "r", "alice"),
		"LeaveSession": p.LeaveSession(ctx, "r", "alice", "s"),
	}
	_, calls["List"] = p.List(ctx, "r")
	_, calls["Count"] = p.Count(ctx, "r")
	_, calls["Watch"] = p.Watch(ctx, "r")
	for name, err := range calls {
		if !errors.Is(err, presence.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}

func testCloseDuringTraffic(t *testing.T, e *env) {
	st := e.suite.New(t, e.ns)
	p := presence.New(st, presence.WithClock(e.mock))
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	started := make(chan struct{}, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				var err error
				switch (w + i) % 4 {
				case 0, 1:
					err = p.Heartbeat(ctx, "r", fmt.Sprint("u", w), ttl, presence.WithSession(fmt.Sprint(i%3)))
				case 2:
					_, err = p.List(ctx, "r")
				case 3:
					var ch <-chan presence.Event
					wctx, cancel := context.WithCancel(ctx)
					ch, err = p.Watch(wctx, "r")
					if err == nil {
						<-ch // the snapshot, or the close
						cancel()
						for range ch {
						}
					}
					cancel()
				}
				if i == 10 {
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, presence.ErrClosed) {
						errs <- fmt.Errorf("worker %d: %w", w, err)
					}
					return
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("during Close: %v (want nil or ErrClosed)", err)
	}
}

func testSharedInstancesAgree(t *testing.T, e *env) {
	p1, p2 := e.presence(t), e.presence(t)
	ch := e.watch(t, p2, "r")
	beat(t, p1, "r", "alice", ttl, presence.WithSession("tab1"), presence.WithMeta([]byte("A")))
	e.expect(t, ch, presence.Join, "alice", 0)
	beat(t, p2, "r", "alice", ttl, presence.WithSession("tab2"))
	vs := list(t, p1, "r", "alice")
	if vs[0].Sessions != 2 || string(vs[0].Meta) != "A" {
		t.Fatalf("viewer seen from p1 = %+v", vs[0])
	}
	list(t, p2, "r", "alice")
	leaveSession(t, p1, "r", "alice", "tab1")
	list(t, p2, "r", "alice")
	leaveSession(t, p1, "r", "alice", "tab2")
	e.expect(t, ch, presence.Leave, "alice", presence.Left)
	list(t, p2, "r")
}

func testSharedDepartureOnce(t *testing.T, e *env) {
	ps := []*presence.Presence{e.presence(t), e.presence(t), e.presence(t)}
	chs := make([]<-chan presence.Event, len(ps))
	for i, p := range ps {
		chs[i] = e.watch(t, p, "r")
	}
	beat(t, ps[0], "r", "alice", ttl)
	beat(t, ps[1], "r", "bob", 2*ttl)
	for _, ch := range chs {
		e.expect(t, ch, presence.Join, "alice", 0)
		e.expect(t, ch, presence.Join, "bob", 0)
	}
	// Every instance's timer fires at alice's deadline; each watcher sees
	// her leave once, whichever instance removed her.
	e.mock.Add(ttl)
	for _, ch := range chs {
		e.expect(t, ch, presence.Leave, "alice", presence.Expired)
	}
	leave(t, ps[2], "r", "bob")
	for _, ch := range chs {
		e.expect(t, ch, presence.Leave, "bob", presence.Left)
	}
}
