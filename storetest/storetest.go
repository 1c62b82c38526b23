// Package storetest is a conformance suite for presence.Store
// implementations, in the manner of testing/fstest.
//
// A store author calls Run from a test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Suite{
//			New: func(t *testing.T, ns string) presence.Store { return mystore.New(db, ns) },
//		})
//	}
//
// The suite drives each store through a presence.Presence with a mock
// clock, so it checks the behaviour users see: idempotent heartbeats,
// sessions, metadata, ordering, expiry at the deadline, leaves, counts,
// watch events with exactly-once departures, concurrent use, bad input and
// use after Close, and a model test that checks random operation sequences
// against a reference model of those guarantees. It never sleeps: time only moves when the suite advances
// the mock clock.
package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
)

// Suite describes the store under test.
type Suite struct {
	// New returns a store over namespace ns. Each subtest uses namespaces
	// no other subtest uses, so a store over shared storage (a database)
	// can map ns to a key prefix and needs no cleaning between subtests.
	// The suite closes every store it gets, through its Presence.
	New func(t *testing.T, ns string) presence.Store

	// Shared says that stores created with the same ns share state, as
	// stores in several processes on one database do. It enables the
	// subtests that run several Presence instances on one room.
	Shared bool

	// ModelSteps is the number of random operations the model test runs;
	// it defaults to 1000.
	ModelSteps int

	// Seed seeds the model test; zero picks a random seed. A failing run
	// logs its seed, and the environment variable STORETEST_SEED, when
	// set, overrides this field to replay it.
	Seed uint64

	// Timeout bounds each wait for an event; it defaults to 10 seconds.
	// It only decides when a missing event fails the test: no subtest
	// waits for time to pass.
	Timeout time.Duration
}

// epoch is where the suite's mock clocks start: a realistic time, since a
// store may hand deadlines to a server with a real clock (for key TTLs).
var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs the conformance suite against s.New's stores.
func Run(t *testing.T, s Suite) {
	if s.New == nil {
		t.Fatal("storetest: Suite.New is nil")
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	var seq atomic.Int64
	run := func(name string, f func(t *testing.T, e *env)) {
		t.Run(name, func(t *testing.T) {
			ns := fmt.Sprintf("storetest-%d-%d", time.Now().UnixNano(), seq.Add(1))
			f(t, &env{suite: s, ns: ns, mock: newMock()})
		})
	}
	run("HeartbeatIsIdempotent", testHeartbeatIsIdempotent)
	run("Sessions", testSessions)
	run("SessionsExpireSeparately", testSessionsExpireSeparately)
	run("Metadata", testMetadata)
	run("ListOrder", testListOrder)
	run("ExpiryAtDeadline", testExpiryAtDeadline)
	run("ExpiryWithoutReads", testExpiryWithoutReads)
	run("ReadsHideExpired", testReadsHideExpired)
	run("ExpireReportsNextDeadline", testExpireReportsNextDeadline)
	run("RejoinAfterExpiry", testRejoinAfterExpiry)
	run("Leave", testLeave)
	run("RoomsAreSeparate", testRoomsAreSeparate)
	run("WatchEvents", testWatchEvents)
	run("WatchLagResyncs", testWatchLagResyncs)
	run("WatchEndsWithContext", testWatchEndsWithContext)
	run("Concurrent", testConcurrent)
	run("BadInput", testBadInput)
	run("HostileIDs", testHostileIDs)
	run("RoomCap", testRoomCap)
	run("SessionCap", testSessionCap)
	run("UseAfterClose", testUseAfterClose)
	run("CloseDuringTraffic", testCloseDuringTraffic)
	run("Model", testModel)
	if s.Shared {
		run("SharedInstancesAgree", testSharedInstancesAgree)
		run("SharedDepartureOnce", testSharedDepartureOnce)
	}
}

func newMock() *clock.Mock {
	m := clock.NewMock()
	m.Set(epoch)
	return m
}

// env is one subtest's world: a namespace and the mock clock every
// Presence of the subtest shares.
type env struct {
	suite Suite
	ns    string
	mock  *clock.Mock
}

// presence returns a new Presence over a new store of the subtest's
// namespace, closed when the test ends.
func (e *env) presence(t *testing.T, opts ...presence.Option) *presence.Presence {
	t.Helper()
	st := e.suite.New(t, e.ns)
	if st == nil {
		t.Fatal("storetest: Suite.New returned nil")
	}
	p := presence.New(st, append([]presence.Option{presence.WithClock(e.mock)}, opts...)...)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// watch starts watching room and returns the events channel after checking
// that the snapshot holds want users.
func (e *env) watch(t *testing.T, p *presence.Presence, room string, want ...string) <-chan presence.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := p.Watch(ctx, room)
	if err != nil {
		t.Fatalf("Watch(%q): %v", room, err)
	}
	ev := e.next(t, ch)
	if ev.Kind != presence.Snapshot {
		t.Fatalf("first event is %v, want snapshot", ev.Kind)
	}
	checkUsers(t, "snapshot", ev.Viewers, want...)
	return ch
}

// next returns the next event on ch, failing the test if none comes within
// the suite's timeout.
func (e *env) next(t *testing.T, ch <-chan presence.Event) presence.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed, want an event")
		}
		return ev
	case <-time.After(e.suite.Timeout):
		t.Fatalf("no event within %v", e.suite.Timeout)
	}
	return presence.Event{}
}

// expect reads the next event and checks its kind, user and reason.
func (e *env) expect(t *testing.T, ch <-chan presence.Event, kind presence.EventKind, user string, reason presence.Reason) presence.Event {
	t.Helper()
	ev := e.next(t, ch)
	if ev.Kind != kind || ev.Viewer.UserID != user || ev.Reason != reason {
		t.Fatalf("event = %v %q %v, want %v %q %v", ev.Kind, ev.Viewer.UserID, ev.Reason, kind, user, reason)
	}
	return ev
}

// closed waits for ch to be closed, draining events.
func (e *env) closed(t *testing.T, ch <-chan presence.Event) {
	t.Helper()
	deadline := time.After(e.suite.Timeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open after %v", e.suite.Timeout)
		}
	}
}

func checkUsers(t *testing.T, what string, vs []presence.Viewer, want ...string) {
	t.Helper()
	got := make([]string, len(vs))
	for i, v := range vs {
		got[i] = v.UserID
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("%s users = %q, want %q", what, got, want)
	}
}

func list(t *testing.T, p *presence.Presence, room string, want ...string) []presence.Viewer {
	t.Helper()
	vs, err := p.List(context.Background(), room)
	if err != nil {
		t.Fatalf("List(%q): %v", room, err)
	}
	checkUsers(t, "List", vs, want...)
	n, err := p.Count(context.Background(), room)
	if err != nil {
		t.Fatalf("Count(%q): %v", room, err)
	}
	if n != len(want) {
		t.Fatalf("Count(%q) = %d, want %d", room, n, len(want))
	}
	return vs
}

func beat(t *testing.T, p *presence.Presence, room, user string, ttl time.Duration, opts ...presence.HeartbeatOption) {
	t.Helper()
	if err := p.Heartbeat(context.Background(), room, user, ttl, opts...); err != nil {
		t.Fatalf("Heartbeat(%q, %q): %v", room, user, err)
	}
}

func leave(t *testing.T, p *presence.Presence, room, user string) {
	t.Helper()
	if err := p.Leave(context.Background(), room, user); err != nil {
		t.Fatalf("Leave(%q, %q): %v", room, user, err)
	}
}

func leaveSession(t *testing.T, p *presence.Presence, room, user, session string) {
	t.Helper()
	if err := p.LeaveSession(context.Background(), room, user, session); err != nil {
		t.Fatalf("LeaveSession(%q, %q, %q): %v", room, user, session, err)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Fatalf("%s = %v, want %v", what, got.UTC(), want.UTC())
	}
}
