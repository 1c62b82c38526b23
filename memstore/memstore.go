// Package memstore is the in-memory presence.Store: the embedded default,
// with no dependencies beyond the standard library.
//
// Rooms are spread over shards by a hash of the room ID, each shard with its
// own lock and its own expiry heap, so heartbeats to different rooms proceed
// in parallel on all cores. A room finds its users through a map and lists
// them from a dense slice, so List is one pass and Count costs the same for
// any room. Each user is one allocation of two cache lines: the first holds
// its first session and its last heartbeat, with times as Unix
// milliseconds, which is all that a refresh of that session reads and
// writes; the second holds what only List and events read, which build
// their time.Time values from it. So a refresh touches one line of the
// user's and allocates nothing. A refresh that moves a deadline later
// leaves the heap alone: expiry re-files such sessions when their old
// deadline comes up, and pops only what has expired, so its cost is in
// proportion to what comes due, not to how many are present. Reads and
// heartbeats expire their shard's due sessions first, so every answer is
// current even between two runs of Expire.
//
// The state lives in one process: several app servers need a shared store
// such as redisstore.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-go/presence"
)

const shardCount = 64 // a power of two

// Store is an in-memory presence.Store and presence.Subscriber. Create it
// with New; the zero value is not usable.
type Store struct {
	seed   maphash.Seed
	closed atomic.Bool
	_      [64]byte // keeps the shards' locks off the line every call reads
	shards [shardCount]shard
}

var (
	_ presence.Store      = (*Store)(nil)
	_ presence.Subscriber = (*Store)(nil)
)

// shard holds its rooms under a plain mutex: a write costs half the atomic
// operations of a read-write lock, and reads hold it only to copy.
type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
	heap  expiryHeap
	_     [64]byte // keeps neighbouring shards' locks off one cache line
}

// room finds a user by ID in users, and lists them all from dense.
type room struct {
	id    string
	users map[string]*user
	dense []*user // in no order; dense[u.slot] == u
	subs  []*subscription
}

// user is laid out for the cache: its first 64 bytes are what a refresh of
// its first session touches, and its size, 128 bytes, is a size class of
// the allocator, so that part always fills exactly one cache line.
type user struct {
	own      session // the first session; it is unused once the user has left
	lastSeen int64   // Unix ms

	room      *room
	id        string
	firstSeen int64 // Unix ms
	meta      []byte
	slot      int32
	sessions  int32 // own and those linked from it
}

// session is ordered in its shard's heap by key, which lags behind
// deadline: a refresh that moves the deadline later leaves the heap alone,
// and expiry moves the session down when its stale key comes due. So the
// hot path touches no heap, and expiry still costs in proportion to what
// comes due.
type session struct {
	id       string
	user     *user
	next     *session // the user's next session; most users have one
	deadline int64    // Unix ms
	key      int64    // heap key, never after deadline
	index    int      // position in the shard's heap
}

type subscription struct{ fn func(presence.Event) }

// New returns an empty Store.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].rooms = make(map[string]*room)
	}
	return s
}

func (s *Store) shard(room string) *shard {
	return &s.shards[maphash.String(s.seed, room)&(shardCount-1)]
}

func (s *Store) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("memstore: %s: %w", op, presence.ErrClosed)
	}
	return nil
}

// Heartbeat implements presence.Store.
func (s *Store) Heartbeat(ctx context.Context, b presence.Beat) error {
	if err := s.check("heartbeat"); err != nil {
		return err
	}
	now, deadline := b.Now.UnixMilli(), b.Deadline.UnixMilli()
	sh := s.shard(b.Room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)

	r := sh.rooms[b.Room]
	var u *user
	if r != nil {
		u = r.users[b.UserID]
	}
	if u == nil {
		return sh.join(r, b, now, deadline)
	}
	ses := u.session(b.SessionID)
	switch {
	case ses == nil:
		if b.MaxSessions > 0 && int(u.sessions) >= b.MaxSessions {
			return fmt.Errorf("memstore: heartbeat: %w: %d sessions", presence.ErrTooManySessions, u.sessions)
		}
		ses = &session{id: b.SessionID, user: u, next: u.own.next, deadline: deadline, key: deadline}
		u.own.next = ses
		u.sessions++
		sh.heap.push(ses)
	case deadline >= ses.key:
		ses.deadline = deadline // the heap catches up lazily
	default:
		ses.deadline, ses.key = deadline, deadline
		sh.heap.up(ses.index)
	}
	u.lastSeen = now
	if b.Meta != nil && !bytes.Equal(u.meta, b.Meta) {
		u.meta = slices.Clone(b.Meta)
		r.publish(presence.Update, b.Now, u)
	}
	return nil
}

// join makes b's user present in r, creating r if it is nil.
func (sh *shard) join(r *room, b presence.Beat, now, deadline int64) error {
	if r == nil {
		r = &room{id: b.Room, users: make(map[string]*user)}
		sh.rooms[b.Room] = r
	} else if b.MaxViewers > 0 && len(r.dense) >= b.MaxViewers {
		return fmt.Errorf("memstore: heartbeat: %w: %d viewers", presence.ErrRoomFull, len(r.dense))
	}
	u := &user{
		lastSeen:  now,
		room:      r,
		id:        b.UserID,
		firstSeen: now,
		meta:      []byte{},
		slot:      int32(len(r.dense)),
		sessions:  1,
	}
	if len(b.Meta) > 0 {
		u.meta = slices.Clone(b.Meta)
	}
	u.own = session{id: b.SessionID, user: u, deadline: deadline, key: deadline}
	r.users[b.UserID] = u
	r.dense = append(r.dense, u)
	sh.heap.push(&u.own)
	r.publish(presence.Join, b.Now, u)
	return nil
}

// Leave implements presence.Store.
func (s *Store) Leave(ctx context.Context, roomID, userID, sessionID string, now time.Time) error {
	if err := s.check("leave"); err != nil {
		return err
	}
	sh := s.shard(roomID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now.UnixMilli())

	r := sh.rooms[roomID]
	if r == nil {
		return nil
	}
	u := r.users[userID]
	if u == nil {
		return nil
	}
	if sessionID == "" {
		for ses := &u.own; ses != nil; ses = ses.next {
			sh.heap.remove(ses.index)
		}
		u.sessions = 0
	} else if ses := u.session(sessionID); ses != nil {
		sh.heap.remove(ses.index)
		sh.unlink(ses)
	}
	if u.sessions == 0 {
		sh.depart(u, presence.Left, now)
	}
	return nil
}

// List implements presence.Store.
func (s *Store) List(ctx context.Context, roomID string, now time.Time) ([]presence.Viewer, error) {
	if err := s.check("list"); err != nil {
		return nil, err
	}
	ms := now.UnixMilli()
	sh := s.shard(roomID)
	// Allocate with the lock released, so that other callers need not wait
	// for the allocator or the garbage collector.
	vs := make([]presence.Viewer, sh.count(roomID, ms))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(ms)
	r := sh.rooms[roomID]
	if r == nil {
		return vs[:0], nil
	}
	if len(r.dense) > len(vs) { // joined in between
		vs = make([]presence.Viewer, len(r.dense))
	}
	vs = vs[:len(r.dense)]
	for i, u := range r.dense {
		u.fill(&vs[i])
	}
	return vs, nil
}

// Count implements presence.Store. It costs the same whatever the room's
// size.
func (s *Store) Count(ctx context.Context, roomID string, now time.Time) (int, error) {
	if err := s.check("count"); err != nil {
		return 0, err
	}
	return s.shard(roomID).count(roomID, now.UnixMilli()), nil
}

func (sh *shard) count(roomID string, now int64) int {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now)
	if r := sh.rooms[roomID]; r != nil {
		return len(r.dense)
	}
	return 0
}

// Expire implements presence.Store, across every room.
func (s *Store) Expire(ctx context.Context, now time.Time) (time.Time, error) {
	if err := s.check("expire"); err != nil {
		return time.Time{}, err
	}
	ms := now.UnixMilli()
	var next int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.expire(ms)
		if k := sh.nextDeadline(); k != 0 && (next == 0 || k < next) {
			next = k
		}
		sh.mu.Unlock()
	}
	if next == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(next), nil
}

// Subscribe implements presence.Subscriber. fn runs with the room's shard
// locked, in the order changes take effect.
func (s *Store) Subscribe(ctx context.Context, roomID string, fn func(presence.Event)) (func(), error) {
	if err := s.check("subscribe"); err != nil {
		return nil, err
	}
	sub := &subscription{fn: fn}
	sh := s.shard(roomID)
	sh.mu.Lock()
	r := sh.rooms[roomID]
	if r == nil {
		r = &room{id: roomID, users: make(map[string]*user)}
		sh.rooms[roomID] = r
	}
	r.subs = append(r.subs, sub)
	sh.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			sh.mu.Lock()
			defer sh.mu.Unlock()
			if i := slices.Index(r.subs, sub); i >= 0 {
				r.subs = slices.Delete(r.subs, i, i+1)
			}
			sh.dropIfEmpty(r)
		})
	}, nil
}

// Len reports how many rooms the store holds: rooms with a live or
// not-yet-expired session, or with a subscription. It is zero once every
// viewer has gone and every watcher has stopped.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.rooms)
		sh.mu.Unlock()
	}
	return n
}

// Close implements presence.Store. Later calls fail with presence.ErrClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// expire removes every session due at or before now, in the order of
// their heap keys: deadline order, but for sessions refreshed since they
// were keyed. sh.mu must be held.
func (sh *shard) expire(now int64) {
	if len(sh.heap) > 0 && sh.heap[0].key <= now {
		sh.expireDue(now)
	}
}

func (sh *shard) expireDue(now int64) {
	for len(sh.heap) > 0 && sh.heap[0].key <= now {
		ses := sh.heap[0]
		if ses.deadline > now { // refreshed since it was keyed
			ses.key = ses.deadline
			sh.heap.down(0)
			continue
		}
		sh.heap.pop()
		u, at := ses.user, ses.deadline
		sh.unlink(ses)
		if u.sessions == 0 {
			sh.depart(u, presence.Expired, time.UnixMilli(at))
		}
	}
}

// nextDeadline returns the earliest deadline in the shard, or 0, bringing
// stale keys at the top of the heap up to date. sh.mu must be held.
func (sh *shard) nextDeadline() int64 {
	for len(sh.heap) > 0 {
		ses := sh.heap[0]
		if ses.key == ses.deadline {
			return ses.key
		}
		ses.key = ses.deadline
		sh.heap.down(0)
	}
	return 0
}

// unlink removes ses, which has left the heap, from its user's sessions.
// If ses is the user's first session, the next one moves into its place,
// so that ses then holds that session.
func (sh *shard) unlink(ses *session) {
	u := ses.user
	u.sessions--
	if ses == &u.own {
		if next := u.own.next; next != nil {
			u.own = *next
			sh.heap[u.own.index] = &u.own
		}
		return
	}
	for p := &u.own; p.next != nil; p = p.next {
		if p.next == ses {
			p.next = ses.next
			return
		}
	}
}

// depart removes a user whose last session ended and reports it.
func (sh *shard) depart(u *user, reason presence.Reason, at time.Time) {
	r := u.room
	r.leave(u)
	if len(r.subs) > 0 {
		v := u.viewer()
		v.Sessions, v.Deadline = 0, at
		r.publishViewer(presence.Event{Kind: presence.Leave, Room: r.id, Time: at, Reason: reason}, v)
	}
	sh.dropIfEmpty(r)
}

func (sh *shard) dropIfEmpty(r *room) {
	if len(r.dense) == 0 && len(r.subs) == 0 && sh.rooms[r.id] == r {
		delete(sh.rooms, r.id)
	}
}

// leave removes u from r, moving the last user into its slot.
func (r *room) leave(u *user) {
	delete(r.users, u.id)
	last := len(r.dense) - 1
	if moved := r.dense[last]; moved != u {
		r.dense[u.slot] = moved
		moved.slot = u.slot
	}
	r.dense[last] = nil
	r.dense = r.dense[:last]
}

func (r *room) publish(kind presence.EventKind, at time.Time, u *user) {
	if len(r.subs) > 0 {
		r.publishViewer(presence.Event{Kind: kind, Room: r.id, Time: at}, u.viewer())
	}
}

func (r *room) publishViewer(ev presence.Event, v presence.Viewer) {
	ev.Viewer = v
	for _, sub := range r.subs {
		sub.fn(ev)
	}
}

func (u *user) session(id string) *session {
	for ses := &u.own; ses != nil; ses = ses.next {
		if ses.id == id {
			return ses
		}
	}
	return nil
}

// viewer returns u as a present viewer.
func (u *user) viewer() presence.Viewer {
	var v presence.Viewer
	u.fill(&v)
	return v
}

// fill sets every field of v, which is zero, to describe u. Writing the
// fields one by one into place is cheaper than copying a whole Viewer in,
// which goes through the garbage collector's bulk write barrier.
func (u *user) fill(v *presence.Viewer) {
	deadline := u.own.deadline
	for ses := u.own.next; ses != nil; ses = ses.next {
		deadline = max(deadline, ses.deadline)
	}
	v.UserID = u.id
	v.FirstSeen = time.UnixMilli(u.firstSeen)
	v.LastSeen = time.UnixMilli(u.lastSeen)
	v.Deadline = time.UnixMilli(deadline)
	v.Sessions = int(u.sessions)
	v.Meta = u.meta
}
