package presence

import (
	"errors"
	"fmt"
	"time"
)

// Errors returned for bad input and misuse. They are returned wrapped, with
// the operation and the offending size; test for them with errors.Is. A call
// that returns one of them has changed nothing.
var (
	ErrInvalidRoom    = errors.New("invalid room ID")
	ErrInvalidUser    = errors.New("invalid user ID")
	ErrInvalidSession = errors.New("invalid session ID")
	ErrInvalidTTL     = errors.New("invalid TTL")
	ErrMetaTooLarge   = errors.New("metadata too large")
	ErrClosed         = errors.New("presence closed")
	// ErrRoomFull is returned by Heartbeat when the user is not present
	// and the room already holds the number of viewers WithMaxViewers
	// allows.
	ErrRoomFull = errors.New("room full")
	// ErrTooManySessions is returned by Heartbeat when it would give a
	// user more live sessions in a room than Limits.MaxSessions.
	ErrTooManySessions = errors.New("too many sessions")
	// ErrTooManyWatchers is returned by Watch when the room already has
	// the number of watchers WithMaxWatchers allows on this Presence.
	ErrTooManyWatchers = errors.New("too many watchers")
	// ErrWatchUnsupported is returned by Watch when the Store does not
	// implement Subscriber. It wraps errors.ErrUnsupported.
	ErrWatchUnsupported = fmt.Errorf("store cannot be watched: %w", errors.ErrUnsupported)
)

// Limits bound what a Presence accepts. A zero field takes its default.
type Limits struct {
	MaxIDLen   int           // bytes in a room, user or session ID; default 256
	MaxMetaLen int           // bytes of metadata; default 4096
	MinTTL     time.Duration // default and floor 1ms, the precision of deadlines
	MaxTTL     time.Duration // default 1h
	// MaxSessions caps one user's live sessions in one room, so that a
	// client minting session IDs cannot grow a user without bound;
	// default 32.
	MaxSessions int
}

func (l Limits) withDefaults() Limits {
	d := Limits{MaxIDLen: 256, MaxMetaLen: 4096, MinTTL: time.Millisecond, MaxTTL: time.Hour, MaxSessions: 32}
	if l.MaxSessions > 0 {
		d.MaxSessions = l.MaxSessions
	}
	if l.MaxIDLen > 0 {
		d.MaxIDLen = l.MaxIDLen
	}
	if l.MaxMetaLen > 0 {
		d.MaxMetaLen = l.MaxMetaLen
	}
	if l.MinTTL > 0 {
		d.MinTTL = l.MinTTL
	}
	if l.MaxTTL > 0 {
		d.MaxTTL = l.MaxTTL
	}
	if d.MinTTL < time.Millisecond {
		d.MinTTL = time.Millisecond
	}
	return d
}

// call describes the arguments of one public call, for validation. It holds
// values, not pointers, so validating never makes a heartbeat allocate.
type call struct {
	op      string
	room    string
	user    string
	session string
	ttl     time.Duration
	meta    []byte
	checks  check
}

// check selects what validate checks beyond the room.
type check uint8

const (
	checkUser        check = 1 << iota
	checkSession           // may be empty
	checkNeedSession       // must not be empty
	checkTTL
	checkMeta
)

// validate is the one check every public entry point runs before touching
// the Store. It returns nil or an error wrapping one of the sentinels.
func (l Limits) validate(c call) error {
	err := l.checkID(c.room, ErrInvalidRoom, true)
	if err == nil && c.checks&checkUser != 0 {
		err = l.checkID(c.user, ErrInvalidUser, true)
	}
	if err == nil && c.checks&(checkSession|checkNeedSession) != 0 {
		err = l.checkID(c.session, ErrInvalidSession, c.checks&checkNeedSession != 0)
	}
	if err == nil && c.checks&checkTTL != 0 && (c.ttl < l.MinTTL || c.ttl > l.MaxTTL) {
		err = fmt.Errorf("%w: %v is outside [%v, %v]", ErrInvalidTTL, c.ttl, l.MinTTL, l.MaxTTL)
	}
	if err == nil && c.checks&checkMeta != 0 && len(c.meta) > l.MaxMetaLen {
		err = fmt.Errorf("%w: %d bytes, at most %d", ErrMetaTooLarge, len(c.meta), l.MaxMetaLen)
	}
	if err != nil {
		return opError(c.op, err)
	}
	return nil
}

func (l Limits) checkID(id string, sentinel error, required bool) error {
	switch {
	case id == "" && required:
		return fmt.Errorf("%w: empty", sentinel)
	case len(id) > l.MaxIDLen:
		return fmt.Errorf("%w: %d bytes, at most %d", sentinel, len(id), l.MaxIDLen)
	}
	return nil
}

func opError(op string, err error) error {
	return fmt.Errorf("presence: %s: %w", op, err)
}
