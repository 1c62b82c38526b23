package presence

import (
	"context"
	"time"
)

// Store holds the sessions of every room. It is the interface a backend
// implements; [Presence] adds validation, the clock, active expiry and
// watching on top of it.
//
// A Store never reads a clock: every call that depends on time receives now
// from the Presence, so a test that drives the Presence with a mock clock
// drives the Store with it too. All times passed to a Store have millisecond
// precision and no monotonic reading.
//
// The Presence validates every argument before it reaches the Store, so a
// Store may assume IDs are non-empty (except a Beat's SessionID), within the
// configured limits and otherwise arbitrary bytes, and that deadlines lie
// after now. A Store must treat IDs as opaque: no two distinct (room, user,
// session) triples may share state, whatever bytes they contain.
//
// A session is live while now is before its deadline. A user is present in a
// room while at least one of its sessions there is live. Reads (List, Count)
// must never report a user whose sessions have all reached their deadlines,
// even before Expire has removed them.
//
// Every method must be safe for concurrent use. The package storetest checks
// all of this for any Store.
type Store interface {
	// Heartbeat creates or refreshes one session of a user in a room so
	// that it lives until b.Deadline, and records b.Now as the user's last
	// heartbeat (LastSeen is the user's latest heartbeat in any session,
	// including sessions that have since ended while others live on). If b.Meta is non-nil it replaces the user's metadata (an
	// empty, non-nil slice clears it); if nil, the metadata is kept. The
	// Store must not retain b.Meta after returning: it copies what it keeps.
	//
	// When the user was not present, Heartbeat makes it present with
	// FirstSeen b.Now and reports a Join, unless b.MaxViewers is positive
	// and the room already holds that many users: then it changes nothing
	// and returns an error wrapping presence.ErrRoomFull. The check and
	// the join are atomic, so concurrent joins never overfill a room; when the metadata changes, it
	// reports an Update; a refresh reports nothing. Exactly one of any
	// number of concurrent callers observes a given join.
	Heartbeat(ctx context.Context, b Beat) error

	// Leave ends one session of a user in a room, or all of the user's
	// sessions when sessionID is empty. If that ends the user's presence,
	// the Store reports a Leave with reason [Left]. Leaving a session or a
	// user that is not present is not an error and reports nothing.
	Leave(ctx context.Context, room, userID, sessionID string, now time.Time) error

	// List returns the users present in room at now, in any order, each
	// with every field of Viewer set. An empty or unknown room yields an
	// empty list and no error.
	List(ctx context.Context, room string, now time.Time) ([]Viewer, error)

	// Count returns len(List(ctx, room, now)) without building the list.
	Count(ctx context.Context, room string, now time.Time) (int, error)

	// Expire removes the sessions whose deadlines are at or before now and
	// reports a Leave with reason [Expired] for each user that thereby
	// departs. It returns the earliest deadline still pending, or the zero
	// time when none is, and the Presence calls it again then.
	//
	// Expire must cover at least every room that has a subscription on
	// this Store. A store shared between processes may leave the other
	// rooms to a cheaper mechanism (key TTLs), since reads already hide
	// expired users. Each departure is reported once, however many
	// callers or processes expire the same room at the same time.
	Expire(ctx context.Context, now time.Time) (next time.Time, err error)

	// Close releases the Store's resources and stops any goroutine it
	// started. Calls after Close return errors.
	Close() error
}

// Subscriber is implemented by a Store that can report changes as they
// happen. [Presence.Watch] requires it.
type Subscriber interface {
	// Subscribe calls fn with every Join, Update and Leave of room, from
	// any process sharing the Store, until stop is called. For one room,
	// fn is called from one goroutine at a time, in the order the changes
	// took effect. fn must not block: the Presence's fn only queues. ctx
	// bounds establishing the subscription, not its lifetime.
	//
	// Every Join and Update carries the viewer's deadline, and the
	// Presence sets its expiry timer by it. A store shared between
	// processes may therefore publish an Update with unchanged metadata
	// when a heartbeat or a leave moves a deadline earlier, so that every
	// process expires the room in time; watchers never see such an Update.
	// fn must not call stop.
	//
	// When the Store may have missed changes (a dropped connection, an
	// overflowing buffer), it calls fn with an Event of kind [Resync] and
	// no viewers; the Presence then rebuilds its watchers' state from
	// List. Subscribe returns once the subscription is established, so no
	// change made after it returns is missed. stop is idempotent.
	Subscribe(ctx context.Context, room string, fn func(Event)) (stop func(), err error)
}

// Beat is one heartbeat as a Store receives it.
type Beat struct {
	Room      string
	UserID    string
	SessionID string    // "" is the user's default session
	Now       time.Time // the heartbeat's time, recorded as LastSeen
	Deadline  time.Time // the session lives until then
	Meta      []byte    // nil keeps the metadata; non-nil replaces it
	// MaxViewers, when positive, caps the users the room may hold: a join
	// beyond it fails with ErrRoomFull. Present users always refresh.
	MaxViewers int
	// MaxSessions, when positive, caps the user's live sessions in the
	// room: a new session beyond it fails with ErrTooManySessions and
	// changes nothing. Existing sessions always refresh.
	MaxSessions int
}
