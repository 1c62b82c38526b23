package redisstore

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// A heartbeat goes through up to two stages, one pipeline round each, and
// one more if the server had not cached the script.
const (
	stageRefresh = iota // plain commands on a session known to be live
	stageScript         // heartbeatScript
)

// heartbeat is one Heartbeat call as the batcher runs it.
//
// The refresh stage is used only when this store itself last set the
// session's deadline, with the same TTL, to a time after now, and the beat
// carries no metadata: then the session is live and the user present, so
// the heartbeat can be neither a join nor an update. It is ZADD XX GT CH
// on the session's member (which changes nothing if another process
// removed the session meanwhile, moved it to the other zset or set a later
// deadline, sending the heartbeat on to the script, which also reports a
// deadline moved earlier): in the users zset when the user has one
// session, else in the sessions zset plus ZADD XX GT on the user's
// deadline. PEXPIRE GT on the room's keys follows when their TTL runs low.
// A refresh in the same millisecond as the last one is a ZSCORE.
type heartbeat struct {
	s       *Store
	b       presence.Beat
	keys    roomKeys
	now     int64
	dl      int64
	ttl     int64
	keyTTL  int64
	member  string
	multi   bool // the user has several sessions: see scripts.go
	stage   int
	extend  bool
	same    bool    // the refresh sets the deadline the session has
	args    [13]any // of the refresh's commands
	zadd    *redis.IntCmd
	zscore  *redis.FloatCmd
	script  scriptRun
	err     error
	started int64 // local real time, Unix ms
}

func newHeartbeat(s *Store, b presence.Beat) *heartbeat {
	h := &heartbeat{
		s:       s,
		b:       b,
		now:     b.Now.UnixMilli(),
		dl:      b.Deadline.UnixMilli(),
		started: time.Now().UnixMilli(),
		stage:   stageScript,
	}
	h.ttl = h.dl - h.now
	h.keyTTL = h.ttl + s.grace.Milliseconds()
	var e sessEntry
	var horizon int64
	h.keys, e, horizon = s.inner.lookup(s.prefix, b.Room, sessKey{b.UserID, b.SessionID})
	if b.Meta == nil && e.ttl == h.ttl && e.deadline > h.now {
		h.stage = stageRefresh
		h.member = e.member
		h.multi = e.multi
		h.same = e.deadline == h.dl
		h.extend = h.started+h.ttl+s.grace.Milliseconds()/2 > horizon
	}
	return h
}

func (h *heartbeat) queue(ctx context.Context, p redis.Pipeliner) {
	switch h.stage {
	case stageRefresh:
		// The arguments live in h, so queueing allocates only the
		// commands and the boxed values.
		a := &h.args
		key := h.keys.users
		if h.multi {
			key = h.keys.sessions
		}
		if h.same {
			a[0], a[1], a[2] = "zscore", key, h.member
			h.zscore = redis.NewFloatCmd(ctx, a[0:3]...)
			_ = p.Process(ctx, h.zscore)
		} else {
			// GT: a refresh never moves a deadline earlier; one that
			// would goes to the script, which reports it.
			dl := any(h.dl)
			a[0], a[1], a[2], a[3], a[4], a[5], a[6] = "zadd", key, "xx", "gt", "ch", dl, h.member
			h.zadd = redis.NewIntCmd(ctx, a[0:7]...)
			_ = p.Process(ctx, h.zadd)
			if h.multi {
				_, suf, _ := splitMember(h.member)
				user := h.member[:len(h.member)-len(suf)]
				a[7], a[8], a[9], a[10], a[11], a[12] = "zadd", h.keys.users, "xx", "gt", dl, user
				_ = p.Process(ctx, redis.NewIntCmd(ctx, a[7:13]...))
			}
		}
		if h.extend {
			for _, k := range [...]string{h.keys.sessions, h.keys.users, h.keys.info} {
				p.Do(ctx, "PEXPIRE", k, h.keyTTL, "GT")
			}
		}
	case stageScript:
		if h.script.script == nil {
			hasMeta, meta := "0", []byte(nil)
			if h.b.Meta != nil {
				hasMeta, meta = "1", h.b.Meta
			}
			h.script = scriptRun{script: heartbeatScript, keys: h.keys.all(), args: []any{h.s.pub, h.now, h.dl,
				h.b.UserID, h.ttl, h.b.SessionID, hasMeta, meta, h.keyTTL, max(h.b.MaxViewers, 0), max(h.b.MaxSessions, 0)}}
		}
		h.script.queue(ctx, p)
	}
}

func (h *heartbeat) settle() bool {
	switch h.stage {
	case stageRefresh:
		var ok bool
		if h.same {
			sc, err := h.zscore.Result()
			if err != nil && err != redis.Nil {
				h.err = err
				return false
			}
			ok = err == nil && sc == float64(h.dl)
		} else {
			n, err := h.zadd.Result()
			if err != nil {
				h.err = err
				return false
			}
			ok = n == 1
		}
		if !ok {
			h.stage = stageScript
			h.extend = false
			return true
		}
		h.remember(h.extend)
		return false
	case stageScript:
		if h.script.settle() {
			return true // once more, with EVAL
		}
	}
	res, err := h.script.cmd.Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("malformed reply %v", res)
	}
	if err != nil {
		h.err = err
		return false
	}
	switch res[0] {
	case -1:
		h.err = fmt.Errorf("%w: it holds %d users", presence.ErrRoomFull, h.b.MaxViewers)
		return false
	case -2:
		h.err = fmt.Errorf("%w: the user has %d", presence.ErrTooManySessions, h.b.MaxSessions)
		return false
	}
	// The script may have set the user's deadline earlier than the room's
	// known next deadline; its event will say so too, but later.
	h.s.lowerNext(h.b.Room, h.dl)
	h.multi = res[1] > 1
	h.remember(true)
	return false
}

func (h *heartbeat) result() error { return h.err }

// remember records the deadline this store set for the session, and how
// long the room's keys live if this heartbeat extended them.
func (h *heartbeat) remember(extended bool) {
	e := sessEntry{deadline: h.dl, ttl: h.ttl, member: h.member, multi: h.multi}
	if e.member == "" {
		e.member = member(h.b.UserID, h.ttl, h.b.SessionID)
	}
	horizon := int64(0)
	if extended {
		horizon = h.started + h.keyTTL
	}
	h.s.inner.store(h.b.Room, sessKey{h.b.UserID, h.b.SessionID}, e, horizon, h.now)
}

// innerCache is what a store knows about the sessions it keeps alive: the
// deadline and TTL it last set for each, and until when each room's keys
// surely live. It only ever lets a refresh skip the script; a stale entry
// costs a second round, never a wrong answer.
type innerCache struct {
	seed   maphash.Seed
	shards [64]cacheShard
}

type cacheShard struct {
	mu      sync.Mutex
	rooms   map[string]*roomEntry
	size    int // sessions and rooms held
	sweepAt int
	_       [32]byte
}

type roomEntry struct {
	keys     roomKeys
	horizon  int64 // local real time, Unix ms
	sessions map[sessKey]sessEntry
}

type sessKey struct{ user, session string }

type sessEntry struct {
	deadline, ttl int64 // Unix ms by the Presence's clock; ms
	member        string
	multi         bool // the user had several sessions
}

func newInnerCache() *innerCache {
	c := &innerCache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].rooms = make(map[string]*roomEntry)
		c.shards[i].sweepAt = 1024
	}
	return c
}

func (c *innerCache) shard(room string) *cacheShard {
	return &c.shards[maphash.String(c.seed, room)%uint64(len(c.shards))]
}

// lookup returns room's keys, the entry of one of its sessions (zero if
// unknown) and the room keys' horizon.
func (c *innerCache) lookup(prefix, room string, k sessKey) (roomKeys, sessEntry, int64) {
	sh := c.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		r = &roomEntry{keys: keysFor(prefix, room), sessions: make(map[sessKey]sessEntry)}
		sh.rooms[room] = r
		sh.size++
	}
	return r.keys, r.sessions[k], r.horizon
}

// store records e for a session of room and raises the keys' horizon; now
// (the Presence's clock) decides what a sweep may drop.
func (c *innerCache) store(room string, k sessKey, e sessEntry, horizon, now int64) {
	sh := c.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		return // swept meanwhile
	}
	if _, ok := r.sessions[k]; !ok {
		sh.size++
	}
	r.sessions[k] = e
	r.horizon = max(r.horizon, horizon)
	if sh.size > sh.sweepAt {
		sh.sweep(now)
	}
}

// forget drops what the cache knows of one session of user in room, or of
// all of the user's sessions when session is empty, so that the next
// heartbeat of a session that left goes straight to the script.
func (c *innerCache) forget(room, user, session string) {
	sh := c.shard(room)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	r := sh.rooms[room]
	if r == nil {
		return
	}
	if session != "" {
		delete(r.sessions, sessKey{user, session})
		return
	}
	for k := range r.sessions {
		if k.user == user {
			delete(r.sessions, k)
		}
	}
}

// sweep drops the sessions whose deadlines have passed and the rooms left
// without sessions. Its cost is spread over the insertions that doubled
// the shard since the last sweep.
func (sh *cacheShard) sweep(now int64) {
	sh.size = 0
	for room, r := range sh.rooms {
		for k, e := range r.sessions {
			if e.deadline <= now {
				delete(r.sessions, k)
			}
		}
		if len(r.sessions) == 0 {
			delete(sh.rooms, room)
			continue
		}
		sh.size += 1 + len(r.sessions)
	}
	sh.sweepAt = max(2*sh.size, 1024)
}
