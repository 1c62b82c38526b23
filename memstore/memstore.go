// Package memstore is the in-memory presence.Store: the embedded default,
// with no dependencies beyond the standard library.
//
// Rooms are spread over shards by a hash of the room ID, each shard with its
// own lock and its own expiry heap, so heartbeats to different rooms proceed
// in parallel on all cores. A room keeps its viewers in one dense slice, so
// a refresh updates a viewer in place and allocates nothing, List is one
// copy and Count costs the same for any room. A refresh that moves a
// deadline later leaves the heap alone: expiry re-files such sessions when
// their old deadline comes up, and pops only what has expired, so its cost
// is in proportion to what comes due, not to how many are present. Reads
// and heartbeats expire their shard's due sessions first, so every answer
// is current even between two runs of Expire.
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
	mu    sync.RWMutex // reads with nothing due share it
	rooms map[string]*room
	heap  expiryHeap
	_     [64]byte // keeps neighbouring shards' locks off one cache line
}

// room keeps its viewers in a dense slice, so that List is one copy and a
// refresh updates the viewer in place. The map finds a user's slot.
type room struct {
	id      string
	users   map[string]*user
	viewers []presence.Viewer // viewers[u.slot] is u's viewer
	owners  []*user           // owners[i].slot == i
	subs    []*subscription
}

type user struct {
	room     *room
	slot     int
	deadline int64 // Unix ms: the latest of its sessions' deadlines
	sessions []*session
	// The first session and the backing array of sessions live in the
	// user's own allocation: most users have one session.
	own     session
	ownUsed bool
	ownArr  [1]*session
}

// session is ordered in its shard's heap by key, which lags behind
// deadline: a refresh that moves the deadline later leaves the heap alone,
// and expiry moves the session down when its stale key comes due. So the
// hot path touches no heap, and expiry still costs in proportion to what
// comes due.
type session struct {
	id       string
	user     *user
	deadline int64 // Unix ms
	key      int64 // heap key, never after deadline
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
	if u == nil {
		if b.MaxViewers > 0 && len(r.users) >= b.MaxViewers {
			sh.dropIfEmpty(r)
			return fmt.Errorf("memstore: heartbeat: %w: %d viewers", presence.ErrRoomFull, len(r.users))
		}
		u = r.join(b)
		u.own = session{id: b.SessionID, user: u, deadline: deadline, key: deadline}
		u.ownUsed = true
		u.ownArr[0] = &u.own
		u.sessions = u.ownArr[:1:1]
		u.deadline = deadline
		sh.heap.push(&u.own)
		r.publish(presence.Event{Kind: presence.Join, Room: r.id, Time: b.Now}, u)
		return nil
	}

	ses := u.session(b.SessionID)
	if ses == nil && b.MaxSessions > 0 && len(u.sessions) >= b.MaxSessions {
		return fmt.Errorf("memstore: heartbeat: %w: %d sessions", presence.ErrTooManySessions, len(u.sessions))
	}
	v := &r.viewers[u.slot]
	v.LastSeen = b.Now
	switch {
	case ses == nil:
		ses = u.addSession(b.SessionID)
		ses.deadline, ses.key = deadline, deadline
		sh.heap.push(ses)
		v.Sessions = len(u.sessions)
	case deadline >= ses.key:
		ses.deadline = deadline // the heap catches up lazily
	default:
		ses.deadline, ses.key = deadline, deadline
		sh.heap.up(ses.index)
	}
	if deadline >= u.deadline {
		u.deadline = deadline
		v.Deadline = b.Deadline
	} else {
		u.updateDeadline()
	}
	if b.Meta != nil && !bytes.Equal(v.Meta, b.Meta) {
		v.Meta = slices.Clone(b.Meta)
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
	} else {
		u.updateDeadline()
	}
	return nil
}

// List implements presence.Store.
func (s *Store) List(ctx context.Context, roomID string, now time.Time) ([]presence.Viewer, error) {
	if err := s.check("list"); err != nil {
		return nil, err
	}
	sh := s.shard(roomID)
	defer sh.unlockRead(sh.lockToRead(now.UnixMilli()))
	r := sh.rooms[roomID]
	if r == nil || len(r.viewers) == 0 {
		return []presence.Viewer{}, nil
	}
	return slices.Clone(r.viewers), nil
}

// Count implements presence.Store. It costs the same whatever the room's
// size.
func (s *Store) Count(ctx context.Context, roomID string, now time.Time) (int, error) {
	if err := s.check("count"); err != nil {
		return 0, err
	}
	sh := s.shard(roomID)
	defer sh.unlockRead(sh.lockToRead(now.UnixMilli()))
	if r := sh.rooms[roomID]; r != nil {
		return len(r.users), nil
	}
	return 0, nil
}

// lockToRead locks sh for a read at now, and unlockRead(exclusive)
// unlocks it. With nothing due it takes the lock shared, so that readers
// run in parallel; otherwise it takes it exclusively and expires first.
func (sh *shard) lockToRead(now int64) (exclusive bool) {
	sh.mu.RLock()
	if len(sh.heap) == 0 || sh.heap[0].key > now {
		return false
	}
	sh.mu.RUnlock()
	sh.mu.Lock()
	sh.expire(now)
	return true
}

func (sh *shard) unlockRead(exclusive bool) {
	if exclusive {
		sh.mu.Unlock()
	} else {
		sh.mu.RUnlock()
	}
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

// expire removes every session due at or before now, in deadline order.
// sh.mu must be held.
func (sh *shard) expire(now int64) {
	for len(sh.heap) > 0 && sh.heap[0].key <= now {
		ses := sh.heap[0]
		if ses.deadline > now { // refreshed since it was keyed
			ses.key = ses.deadline
			sh.heap.down(0)
			continue
		}
		sh.heap.pop()
		u := ses.user
		u.removeSession(slices.Index(u.sessions, ses))
		if len(u.sessions) == 0 {
			sh.depart(u, presence.Expired, time.UnixMilli(ses.deadline))
		} else {
			u.updateDeadline()
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

// depart removes a user whose last session ended and reports it.
func (sh *shard) depart(u *user, reason presence.Reason, at time.Time) {
	r := u.room
	v := r.leave(u)
	if len(r.subs) > 0 {
		v.Sessions, v.Deadline = 0, at
		r.publishViewer(presence.Event{Kind: presence.Leave, Room: r.id, Time: at, Reason: reason}, v)
	}
	sh.dropIfEmpty(r)
}

func (sh *shard) dropIfEmpty(r *room) {
	if len(r.users) == 0 && len(r.subs) == 0 && sh.rooms[r.id] == r {
		delete(sh.rooms, r.id)
	}
}

// join adds a user for b's heartbeat, with no session yet.
func (r *room) join(b presence.Beat) *user {
	u := &user{room: r, slot: len(r.viewers)}
	r.users[b.UserID] = u
	r.owners = append(r.owners, u)
	meta := []byte{}
	if len(b.Meta) > 0 {
		meta = slices.Clone(b.Meta)
	}
	r.viewers = append(r.viewers, presence.Viewer{
		UserID:    b.UserID,
		FirstSeen: b.Now,
		LastSeen:  b.Now,
		Deadline:  b.Deadline,
		Sessions:  1,
		Meta:      meta,
	})
	return u
}

// leave removes u and returns its last viewer, moving the last viewer into
// its slot.
func (r *room) leave(u *user) presence.Viewer {
	v := r.viewers[u.slot]
	delete(r.users, v.UserID)
	last := len(r.viewers) - 1
	if u.slot != last {
		r.viewers[u.slot] = r.viewers[last]
		r.owners[u.slot] = r.owners[last]
		r.owners[u.slot].slot = u.slot
	}
	r.viewers[last] = presence.Viewer{}
	r.owners[last] = nil
	r.viewers, r.owners = r.viewers[:last], r.owners[:last]
	return v
}

func (r *room) publish(ev presence.Event, u *user) {
	if len(r.subs) > 0 {
		r.publishViewer(ev, r.viewers[u.slot])
	}
}

func (r *room) publishViewer(ev presence.Event, v presence.Viewer) {
	ev.Viewer = v
	for _, sub := range r.subs {
		sub.fn(ev)
	}
}

func (u *user) session(id string) *session {
	for _, x := range u.sessions {
		if x.id == id {
			return x
		}
	}
	return nil
}

func (u *user) addSession(id string) *session {
	ses := &u.own
	if u.ownUsed {
		ses = &session{}
	}
	u.ownUsed = u.ownUsed || ses == &u.own
	*ses = session{id: id, user: u}
	if len(u.sessions) == 0 {
		u.sessions = u.ownArr[:0:1]
	}
	u.sessions = append(u.sessions, ses)
	return ses
}

func (u *user) removeSession(i int) {
	if u.sessions[i] == &u.own {
		u.ownUsed = false
	}
	last := len(u.sessions) - 1
	u.sessions[i] = u.sessions[last]
	u.sessions[last] = nil
	u.sessions = u.sessions[:last]
	u.room.viewers[u.slot].Sessions = len(u.sessions)
}

// updateDeadline recomputes the user's deadline after a session ended or
// moved its deadline earlier.
func (u *user) updateDeadline() {
	u.deadline = 0
	for _, x := range u.sessions {
		u.deadline = max(u.deadline, x.deadline)
	}
	u.room.viewers[u.slot].Deadline = time.UnixMilli(u.deadline)
}
