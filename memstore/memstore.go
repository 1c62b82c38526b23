// Package memstore is the in-memory presence.Store: the embedded default,
// with no dependencies beyond the standard library.
//
// Rooms are spread over shards by a hash of the room ID, each shard with its
// own lock and its own expiry heap, so heartbeats to different rooms proceed
// in parallel on all cores. Refreshing an existing session allocates
// nothing. Expiry pops only what has expired from the heaps, so its cost is
// in proportion to what expires, not to how many are present. Reads and
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

type shard struct {
	mu    sync.Mutex
	rooms map[string]*room
	heap  expiryHeap
	_     [64]byte // keeps neighbouring shards' locks off one cache line
}

type room struct {
	id    string
	users map[string]*user
	subs  []*subscription
}

type user struct {
	id        string
	room      *room
	firstSeen int64 // Unix ms
	lastSeen  int64
	meta      []byte // never modified in place: events share it
	sessions  []*session
}

type session struct {
	id       string
	user     *user
	deadline int64 // Unix ms
	index    int   // position in the shard's heap
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
	if r == nil {
		r = &room{id: b.Room, users: make(map[string]*user)}
		sh.rooms[b.Room] = r
	}
	u := r.users[b.UserID]
	joined := u == nil
	if joined && b.MaxViewers > 0 && len(r.users) >= b.MaxViewers {
		sh.dropIfEmpty(r)
		return fmt.Errorf("memstore: heartbeat: %w: %d viewers", presence.ErrRoomFull, len(r.users))
	}
	if joined {
		u = &user{id: b.UserID, room: r, firstSeen: now, meta: slices.Clone(b.Meta)}
		r.users[b.UserID] = u
	}
	u.lastSeen = now
	updated := !joined && b.Meta != nil && !bytes.Equal(u.meta, b.Meta)
	if updated {
		u.meta = slices.Clone(b.Meta)
	}

	var ses *session
	for _, x := range u.sessions {
		if x.id == b.SessionID {
			ses = x
			break
		}
	}
	if ses == nil {
		ses = &session{id: b.SessionID, user: u, deadline: deadline}
		u.sessions = append(u.sessions, ses)
		sh.heap.push(ses)
	} else {
		ses.deadline = deadline
		sh.heap.fix(ses.index)
	}

	switch {
	case joined:
		r.publish(presence.Event{Kind: presence.Join, Room: r.id, Time: b.Now}, u)
	case updated:
		r.publish(presence.Event{Kind: presence.Update, Room: r.id, Time: b.Now}, u)
	}
	return nil
}

// Leave implements presence.Store.
func (s *Store) Leave(ctx context.Context, roomID, userID, sessionID string, now time.Time) error {
	if err := s.check("leave"); err != nil {
		return err
	}
	ms := now.UnixMilli()
	sh := s.shard(roomID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(ms)

	r := sh.rooms[roomID]
	if r == nil {
		return nil
	}
	u := r.users[userID]
	if u == nil {
		return nil
	}
	for i := 0; i < len(u.sessions); {
		if x := u.sessions[i]; sessionID == "" || x.id == sessionID {
			sh.heap.remove(x.index)
			u.removeSession(i)
			continue
		}
		i++
	}
	if len(u.sessions) == 0 {
		sh.depart(u, presence.Left, now)
	}
	return nil
}

// List implements presence.Store.
func (s *Store) List(ctx context.Context, roomID string, now time.Time) ([]presence.Viewer, error) {
	if err := s.check("list"); err != nil {
		return nil, err
	}
	sh := s.shard(roomID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now.UnixMilli())
	r := sh.rooms[roomID]
	if r == nil {
		return []presence.Viewer{}, nil
	}
	vs := make([]presence.Viewer, 0, len(r.users))
	for _, u := range r.users {
		vs = append(vs, u.viewer())
	}
	return vs, nil
}

// Count implements presence.Store. It costs the same whatever the room's
// size.
func (s *Store) Count(ctx context.Context, roomID string, now time.Time) (int, error) {
	if err := s.check("count"); err != nil {
		return 0, err
	}
	sh := s.shard(roomID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.expire(now.UnixMilli())
	if r := sh.rooms[roomID]; r != nil {
		return len(r.users), nil
	}
	return 0, nil
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
		if len(sh.heap) > 0 && (next == 0 || sh.heap[0].deadline < next) {
			next = sh.heap[0].deadline
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

// expire removes every session due at or before now, in deadline order.
// sh.mu must be held.
func (sh *shard) expire(now int64) {
	for len(sh.heap) > 0 && sh.heap[0].deadline <= now {
		ses := sh.heap.pop()
		u := ses.user
		u.removeSession(slices.Index(u.sessions, ses))
		if len(u.sessions) == 0 {
			sh.depart(u, presence.Expired, time.UnixMilli(ses.deadline))
		}
	}
}

// depart removes a user whose last session ended and reports it.
func (sh *shard) depart(u *user, reason presence.Reason, at time.Time) {
	r := u.room
	delete(r.users, u.id)
	if len(r.subs) > 0 {
		v := u.viewer()
		v.Deadline = at
		r.publishViewer(presence.Event{Kind: presence.Leave, Room: r.id, Time: at, Reason: reason}, v)
	}
	sh.dropIfEmpty(r)
}

func (sh *shard) dropIfEmpty(r *room) {
	if len(r.users) == 0 && len(r.subs) == 0 && sh.rooms[r.id] == r {
		delete(sh.rooms, r.id)
	}
}

func (r *room) publish(ev presence.Event, u *user) {
	if len(r.subs) > 0 {
		r.publishViewer(ev, u.viewer())
	}
}

func (r *room) publishViewer(ev presence.Event, v presence.Viewer) {
	ev.Viewer = v
	for _, sub := range r.subs {
		sub.fn(ev)
	}
}

func (u *user) removeSession(i int) {
	last := len(u.sessions) - 1
	u.sessions[i] = u.sessions[last]
	u.sessions[last] = nil
	u.sessions = u.sessions[:last]
}

func (u *user) viewer() presence.Viewer {
	var deadline int64
	for _, x := range u.sessions {
		deadline = max(deadline, x.deadline)
	}
	return presence.Viewer{
		UserID:    u.id,
		FirstSeen: time.UnixMilli(u.firstSeen),
		LastSeen:  time.UnixMilli(u.lastSeen),
		Deadline:  time.UnixMilli(deadline),
		Sessions:  len(u.sessions),
		Meta:      u.meta,
	}
}
