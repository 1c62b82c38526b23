package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// List implements presence.Store. It never runs a script. When the store
// holds the room's user records at some version (see listCache), it reads
// both zsets and then the version in one pipeline; if the version is
// unchanged, the records were the cached ones when the zsets were read,
// and the zsets say where each session was (every move of a session
// between them rewrites its user's record). Otherwise it reads the zsets
// and the records in one MULTI/EXEC, which runs atomically with respect to
// the scripts, and keeps the records. Either way the viewers are one state
// of the room.
//
// The zsets are read with DUMP (see dump.go), or with ZRANGE WITHSCORES
// where DUMP fails or its format is not one this package decodes.
func (s *Store) List(ctx context.Context, room string, now time.Time) ([]presence.Viewer, error) {
	const op = "list"
	if err := s.check(op); err != nil {
		return nil, err
	}
	nowMs := now.UnixMilli()
	dump := !s.noDump.Load()
	var k roomKeys
	if e := s.lists.get(room); e == nil {
		k = s.keys(room)
	} else {
		k = e.keys
		r := &listRead{s: s, e: e, dump: dump, now: nowMs}
		if err := s.batch.do(ctx, r); err != nil {
			return nil, s.fail(op, err)
		}
		if r.vs != nil {
			return r.vs, nil
		}
		dump = dump && !s.noDump.Load()
	}
	vs, err := s.listAtomically(ctx, room, k, nowMs, dump)
	if errors.Is(err, errNotDecoded) {
		vs, err = s.listAtomically(ctx, room, k, nowMs, false)
	}
	if err != nil {
		return nil, s.fail(op, err)
	}
	return vs, nil
}

// listRead is List's read of a room whose records the store holds, as the
// batcher runs it: concurrent Lists and heartbeats share pipelines. It
// reads the zsets and then the records' version; without users of several
// sessions at the cached version, the sessions zset is empty and it reads
// only the users zset. vs is nil if the version changed, and List then
// reads the room atomically.
type listRead struct {
	s    *Store
	e    *listEntry
	dump bool
	now  int64

	users, sessions func() ([]scored, bool)
	version         *redis.StringCmd
	vs              []presence.Viewer
}

func (r *listRead) queue(ctx context.Context, p redis.Pipeliner) {
	r.users, r.sessions = r.s.readZSets(ctx, p, r.e.keys, r.dump, r.e.multi)
	r.version = p.HGet(ctx, r.e.keys.info, "")
}

func (r *listRead) settle() bool {
	u, uok := r.users()
	ss, sok := r.sessions()
	if r.version.Err() == nil && r.version.Val() == r.e.version && uok && sok {
		if vs, err := assemble(u, ss, r.e.recs, r.now); err == nil {
			r.vs = vs
		}
	}
	return false
}

func (r *listRead) result() error { return nil }

var errNotDecoded = errors.New("zset not decoded")

// listAtomically reads a room's zsets and records in one MULTI/EXEC,
// keeps the records and assembles the viewers. It returns errNotDecoded
// if dump is set and a DUMP failed or its reply could not be decoded, so
// that the caller may read again with ZRANGE.
func (s *Store) listAtomically(ctx context.Context, room string, k roomKeys, now int64, dump bool) ([]presence.Viewer, error) {
	pipe := s.client.TxPipeline()
	users, sessions := s.readZSets(ctx, pipe, k, dump, true)
	info := pipe.HGetAll(ctx, k.info)
	_, err := pipe.Exec(ctx)
	if errors.Is(err, redis.Nil) {
		err = nil // a DUMP of a zset that does not exist
	}
	if err != nil && !(dump && isReplyError(err)) {
		return nil, err
	}
	u, uok := users()
	ss, sok := sessions()
	switch {
	case dump && !(uok && sok):
		return nil, errNotDecoded
	case err != nil:
		return nil, err
	case info.Err() != nil:
		return nil, info.Err()
	case !uok || !sok:
		return nil, errMember
	}
	version, recs, err := decodeRecords(info.Val())
	if err != nil {
		return nil, err
	}
	vs, err := assemble(u, ss, recs, now)
	if err != nil {
		return nil, err
	}
	if version != "" {
		e := &listEntry{keys: k, version: version, recs: recs}
		for _, r := range recs {
			e.multi = e.multi || len(r.sufs) > 1
		}
		s.lists.put(room, e)
	}
	return vs, nil
}

// readZSets queues reads of a room's users zset and, if withSessions, its
// sessions zset, by DUMP or by ZRANGE WITHSCORES, and returns functions
// that give their members and scores once the pipeline ran, or false. A
// DUMP the server refuses (an ACL, a renamed command) or whose reply does
// not decode turns DUMP off for the store; one that fails otherwise (the
// server loading, say) only fails that read.
func (s *Store) readZSets(ctx context.Context, pipe redis.Pipeliner, k roomKeys, dump, withSessions bool) (users, sessions func() ([]scored, bool)) {
	read := func(key string) func() ([]scored, bool) {
		if dump {
			c := pipe.Dump(ctx, key)
			return func() ([]scored, bool) {
				p, err := c.Result()
				if err == redis.Nil {
					return nil, true
				}
				if err != nil {
					if refused(err) {
						s.noDump.Store(true)
					}
					return nil, false
				}
				zs, ok := decodeDump(p)
				if !ok {
					s.noDump.Store(true) // a format this package does not know
				}
				return zs, ok
			}
		}
		c := pipe.ZRangeWithScores(ctx, key, 0, -1)
		return func() ([]scored, bool) { return ranged(c) }
	}
	sessions = func() ([]scored, bool) { return nil, true }
	if withSessions {
		sessions = read(k.sessions)
	}
	return read(k.users), sessions
}

// refused reports whether err says the server will not run the command
// for this client at all.
func refused(err error) bool {
	return redis.HasErrorPrefix(err, "NOPERM") || strings.Contains(err.Error(), "unknown command")
}

// scored is a zset member with its score, an integer here.
type scored struct {
	member string
	score  int64
}

var errMember = errors.New("malformed zset member or score")

// ranged returns the members and scores of a ZRANGE WITHSCORES.
func ranged(c *redis.ZSliceCmd) ([]scored, bool) {
	page, err := c.Result()
	if err != nil {
		return nil, false
	}
	zs := make([]scored, len(page))
	for i, z := range page {
		m, ok := z.Member.(string)
		if !ok {
			return nil, false
		}
		zs[i] = scored{m, int64(z.Score)}
	}
	return zs, true
}

// decodeRecords decodes a room's info hash: the records' version and each
// user's record.
func decodeRecords(info map[string]string) (string, map[string]record, error) {
	recs := make(map[string]record, len(info))
	version := ""
	for user, v := range info {
		if user == "" {
			version = v
			continue
		}
		rec, err := decodeRecord(v, nil)
		if err != nil {
			return "", nil, err
		}
		rec.user = user
		recs[user] = rec
	}
	return version, recs, nil
}

// assemble builds the viewers present at now from a room's users zset,
// sessions zset and user records, as one state of the room. A user with
// one session is its member in the users zset, a user with several has
// its sessions in the sessions zset (see scripts.go). A user is present
// while one of its sessions is live; its last heartbeat is the latest of
// the recorded one and its sessions' (deadline - TTL) that are not in the
// future. Members without a record, or that no script writes, are left
// out, as the expiry script removes them.
func assemble(users, sessions []scored, recs map[string]record, now int64) ([]presence.Viewer, error) {
	var scores map[string]int64
	if len(sessions) > 0 {
		scores = make(map[string]int64, len(sessions))
		for _, z := range sessions {
			scores[z.member] = z.score
		}
	}
	vs := make([]presence.Viewer, 0, len(users))
	var buf []byte
	for _, z := range users {
		user, suf, ok := splitMember(z.member)
		if !ok {
			continue
		}
		rec, ok := recs[user]
		if !ok || z.score <= now {
			continue
		}
		if suf != "" { // the user's one session
			if len(rec.sufs) != 1 || rec.sufs[0] != suf {
				continue
			}
			ttl, ok := ttlOf(suf)
			if !ok {
				return nil, errRecord
			}
			last := rec.last
			if seen := z.score - ttl; seen > last && seen <= now {
				last = seen
			}
			vs = append(vs, viewer(rec.user, rec, last, z.score, 1))
			continue
		}
		pre := len(z.member)
		buf = append(buf[:0], z.member...)
		n, dl, last := 0, int64(0), rec.last
		for _, suf := range rec.sufs {
			buf = append(buf[:pre], suf...)
			sc, ok := scores[string(buf)]
			if !ok {
				continue
			}
			if sc > now {
				n++
				dl = max(dl, sc)
			}
			ttl, ok := ttlOf(suf)
			if !ok {
				return nil, errRecord
			}
			if seen := sc - ttl; seen > last && seen <= now {
				last = seen
			}
		}
		if n > 0 {
			vs = append(vs, viewer(rec.user, rec, last, dl, n))
		}
	}
	return vs, nil
}

func viewer(user string, rec record, last, dl int64, n int) presence.Viewer {
	v := presence.Viewer{
		UserID:    user,
		FirstSeen: time.UnixMilli(rec.first),
		LastSeen:  time.UnixMilli(last),
		Deadline:  time.UnixMilli(dl),
		Sessions:  n,
	}
	v.Meta = rec.meta // read-only, as List documents
	return v
}

// listCache holds, for the rooms this store listed lately, the user
// records it decoded and their version. It only ever saves List the
// HGETALL: a stale entry costs a second read, never a wrong answer.
type listCache struct {
	mu    sync.Mutex
	rooms map[string]*listEntry
}

// listCacheRooms bounds the rooms a listCache holds.
const listCacheRooms = 1024

type listEntry struct {
	keys    roomKeys
	version string
	recs    map[string]record // never changed once cached
	multi   bool              // some user has several sessions
}

func (c *listCache) get(room string) *listEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rooms[room]
}

func (c *listCache) put(room string, e *listEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rooms == nil {
		c.rooms = make(map[string]*listEntry)
	}
	if _, ok := c.rooms[room]; !ok && len(c.rooms) >= listCacheRooms {
		for r := range c.rooms { // evict one room, any
			delete(c.rooms, r)
			break
		}
	}
	c.rooms[room] = e
}
