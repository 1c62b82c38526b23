package presence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/benbjohnson/clock"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestWithLimits(t *testing.T) {
	ctx := context.Background()
	p := presence.New(memstore.New(), presence.WithLimits(presence.Limits{
		MaxIDLen: 4, MaxMetaLen: 2, MinTTL: time.Second, MaxTTL: time.Minute,
	}))
	defer p.Close()

	require.NoError(t, p.Heartbeat(ctx, "room", "user", time.Second, presence.WithMeta([]byte("ok"))))
	require.ErrorIs(t, p.Heartbeat(ctx, "rooms", "user", time.Second), presence.ErrInvalidRoom)
	require.ErrorIs(t, p.Heartbeat(ctx, "room", "users", time.Second), presence.ErrInvalidUser)
	require.ErrorIs(t, p.Heartbeat(ctx, "room", "user", 999*time.Millisecond), presence.ErrInvalidTTL)
	require.ErrorIs(t, p.Heartbeat(ctx, "room", "user", time.Minute+time.Millisecond), presence.ErrInvalidTTL)
	require.ErrorIs(t, p.Heartbeat(ctx, "room", "user", time.Second, presence.WithMeta([]byte("big"))), presence.ErrMetaTooLarge)

	vs, err := p.List(ctx, "room")
	require.NoError(t, err)
	require.Len(t, vs, 1)
	require.Equal(t, "ok", string(vs[0].Meta))
}

func TestErrorsNameTheOperation(t *testing.T) {
	p := presence.New(memstore.New())
	defer p.Close()
	err := p.Heartbeat(context.Background(), "", "u", time.Second)
	require.EqualError(t, err, "presence: heartbeat: invalid room ID: empty")
	_, err = p.Count(context.Background(), string(make([]byte, 300)))
	require.EqualError(t, err, "presence: count: invalid room ID: 300 bytes, at most 256")
}

// unwatchable is a Store without the Subscriber capability.
type unwatchable struct{ presence.Store }

func TestWatchUnsupported(t *testing.T) {
	p := presence.New(unwatchable{memstore.New()})
	defer p.Close()
	_, err := p.Watch(context.Background(), "r")
	require.ErrorIs(t, err, presence.ErrWatchUnsupported)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.NoError(t, p.Heartbeat(context.Background(), "r", "u", time.Second))
}

// failing is a Store whose calls fail until healed, to check that errors
// are wrapped and that background expiry retries.
type failing struct {
	*memstore.Store
	fail chan bool
}

var errDown = errors.New("store down")

func (f failing) Expire(ctx context.Context, now time.Time) (time.Time, error) {
	if <-f.fail {
		return time.Time{}, errDown
	}
	return f.Store.Expire(ctx, now)
}

func TestExpireRetriesAfterFailure(t *testing.T) {
	ctx := context.Background()
	mock := clock.NewMock()
	f := failing{memstore.New(), make(chan bool)}
	p := presence.New(f, presence.WithClock(mock), presence.WithRetry(time.Second))
	defer p.Close()
	events, err := p.Watch(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, presence.Snapshot, (<-events).Kind)

	require.NoError(t, p.Heartbeat(ctx, "r", "u", 5*time.Second))
	require.Equal(t, presence.Join, (<-events).Kind)
	mock.Add(5 * time.Second)
	f.fail <- true // the run at the deadline fails
	// The retry comes once the mock has moved on by the retry interval.
	var waited time.Duration
	for retried := false; !retried; {
		select {
		case f.fail <- false:
			retried = true
		default:
			mock.Add(100 * time.Millisecond)
			waited += 100 * time.Millisecond
		}
	}
	require.GreaterOrEqual(t, waited, time.Second)
	ev := <-events
	require.Equal(t, presence.Leave, ev.Kind)
	require.Equal(t, presence.Expired, ev.Reason)
	// The leave happened at the deadline, though reported a second late.
	require.True(t, ev.Time.Equal(time.UnixMilli(5000)), "leave at %v", ev.Time)
}

func TestCloseEndsWatchers(t *testing.T) {
	p := presence.New(memstore.New())
	var chans []<-chan presence.Event
	for _, room := range []string{"a", "a", "b"} {
		ch, err := p.Watch(context.Background(), room)
		require.NoError(t, err)
		chans = append(chans, ch)
	}
	require.NoError(t, p.Close())
	for _, ch := range chans {
		for range ch { // drains the snapshot, then ends
		}
	}
}

func TestWithMaxWatchers(t *testing.T) {
	p := presence.New(memstore.New(), presence.WithMaxWatchers(2))
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch1, err := p.Watch(ctx, "r")
	require.NoError(t, err)
	ch2, err := p.Watch(ctx, "r")
	require.NoError(t, err)
	_, err = p.Watch(context.Background(), "r")
	require.ErrorIs(t, err, presence.ErrTooManyWatchers)
	// Another room has its own allowance.
	_, err = p.Watch(ctx, "other")
	require.NoError(t, err)
	// A watch gives up its place before its channel closes.
	cancel()
	for range ch1 {
	}
	for range ch2 {
	}
	_, err = p.Watch(context.Background(), "r")
	require.NoError(t, err)
}

// gatedExpire is a Store whose Expire, once it has done its work, waits
// for the test: the clock can move on while an expiry is in flight.
type gatedExpire struct {
	*memstore.Store
	called chan time.Time
	gate   chan struct{}
}

func (g gatedExpire) Expire(ctx context.Context, now time.Time) (time.Time, error) {
	next, err := g.Store.Expire(ctx, now)
	g.called <- now
	<-g.gate
	return next, err
}

// A deadline that passes while an expiry is in flight is still expired,
// though the mock clock never moves again.
func TestDeadlinePassingDuringExpiry(t *testing.T) {
	ctx := context.Background()
	mock := clock.NewMock()
	g := gatedExpire{memstore.New(), make(chan time.Time, 10), make(chan struct{})}
	p := presence.New(g, presence.WithClock(mock))
	defer p.Close()
	defer close(g.gate)
	events, err := p.Watch(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, presence.Snapshot, (<-events).Kind)
	require.NoError(t, p.Heartbeat(ctx, "r", "a", time.Second))
	require.NoError(t, p.Heartbeat(ctx, "r", "b", 2*time.Second))
	require.Equal(t, "a", (<-events).Viewer.UserID)
	require.Equal(t, "b", (<-events).Viewer.UserID)

	mock.Add(time.Second) // a's deadline: an expiry starts
	require.Equal(t, time.UnixMilli(1000), <-g.called)
	ev := <-events
	require.Equal(t, presence.Leave, ev.Kind)
	require.Equal(t, "a", ev.Viewer.UserID)
	mock.Add(4 * time.Second) // b's deadline passes meanwhile
	g.gate <- struct{}{}      // the expiry reports b's deadline as next
	require.Equal(t, time.UnixMilli(5000), <-g.called)
	g.gate <- struct{}{}
	ev = <-events
	require.Equal(t, presence.Leave, ev.Kind)
	require.Equal(t, "b", ev.Viewer.UserID)
	require.Equal(t, presence.Expired, ev.Reason)
}

func TestMaxSessions(t *testing.T) {
	ctx := context.Background()
	p := presence.New(memstore.New(), presence.WithLimits(presence.Limits{MaxSessions: 2}))
	defer p.Close()
	require.NoError(t, p.Heartbeat(ctx, "r", "u", time.Minute, presence.WithSession("a")))
	require.NoError(t, p.Heartbeat(ctx, "r", "u", time.Minute, presence.WithSession("b")))
	err := p.Heartbeat(ctx, "r", "u", time.Minute, presence.WithSession("c"), presence.WithMeta([]byte("x")))
	require.ErrorIs(t, err, presence.ErrTooManySessions)
	vs, err := p.List(ctx, "r")
	require.NoError(t, err)
	require.Equal(t, 2, vs[0].Sessions)
	require.Empty(t, vs[0].Meta, "a refused heartbeat changes nothing")
	// Existing sessions refresh; another user has its own allowance.
	require.NoError(t, p.Heartbeat(ctx, "r", "u", time.Minute, presence.WithSession("a")))
	require.NoError(t, p.Heartbeat(ctx, "r", "v", time.Minute, presence.WithSession("c")))
	require.NoError(t, p.LeaveSession(ctx, "r", "u", "b"))
	require.NoError(t, p.Heartbeat(ctx, "r", "u", time.Minute, presence.WithSession("c")))
}
