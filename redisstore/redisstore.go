package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// Store is a presence.Store and presence.Subscriber over Redis. Several
// Store values, in one process or many, that use the same Redis and the
// same prefix share one set of viewers and one stream of changes. Create it
// with New; the zero value is not usable. Its methods are safe for
// concurrent use.
type Store struct {
	client  redis.UniversalClient
	prefix  string // escaped
	grace   time.Duration
	sharded bool
	pub     string // PUBLISH or SPUBLISH
	health  time.Duration
	expireN int
	inner   *innerCache

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup // batch flushes and subscriptions

	batch batcher
	lists listCache
	hub   hub // classic pub/sub

	expireMu sync.Mutex  // one Expire at a time
	noDump   atomic.Bool // DUMP failed or gave a format List does not decode

	mu    sync.RWMutex
	rooms map[string]*watched // rooms with a subscription
	subs  map[*subscription]struct{}
}

var (
	_ presence.Store      = (*Store)(nil)
	_ presence.Subscriber = (*Store)(nil)
)

// watched is a room this store has at least one subscription on.
type watched struct {
	refs int // guarded by Store.mu
	keys roomKeys

	mu sync.Mutex
	// next is a time (Unix ms) at or before every present user's
	// deadline: Expire skips the room until then. 0 is unknown and
	// math.MaxInt64 is no user. Expire raises it to what its script
	// finds; whatever may set a deadline earlier lowers it first: this
	// store's heartbeats and leaves, and the Join and Update events of
	// every process (which the scripts publish when a deadline moves
	// earlier); a Resync makes it unknown.
	next int64
	// lowest is the lowest time next was lowered to since Expire last
	// took the room in hand, so that Expire never raises next past a
	// change its script may not have seen.
	lowest int64
}

// lowerNext lowers room's known next deadline to t, if the room is
// watched.
func (s *Store) lowerNext(room string, t int64) {
	s.mu.RLock()
	w := s.rooms[room]
	s.mu.RUnlock()
	if w == nil {
		return
	}
	w.mu.Lock()
	w.next = min(w.next, t)
	w.lowest = min(w.lowest, t)
	w.mu.Unlock()
}

// Option configures a Store.
type Option func(*Store)

// WithPrefix sets the prefix of every key and channel the store uses;
// stores share state exactly when they share a Redis and a prefix. The
// default is "presence". Braces and '%' in the prefix are escaped, so a
// prefix can never form a hash tag.
func WithPrefix(prefix string) Option {
	return func(s *Store) { s.prefix = escapePrefix(prefix) }
}

// WithGrace sets how long a room's keys outlive the latest deadline set in
// them. Redis deletes a room nobody touches any more that long after its
// last viewer's deadline. The default is one minute; it must exceed the
// disagreement between app servers' clocks.
func WithGrace(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.grace = d
		}
	}
}

// WithShardedPubSub chooses sharded pub/sub (SPUBLISH, SSUBSCRIBE, Redis 7
// or later) or classic pub/sub for events. The default is sharded for a
// *redis.ClusterClient and classic otherwise. Every store sharing a prefix
// must make the same choice.
func WithShardedPubSub(on bool) Option {
	return func(s *Store) { s.sharded = on }
}

// WithHealthCheck sets how long a subscription may hear nothing before it
// pings Redis to check its connection; a connection found dead is replaced
// and the subscriber resynchronised. The default is 15 seconds.
func WithHealthCheck(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.health = d
		}
	}
}

// WithPipelines sets how many pipelines of concurrent heartbeats the store
// keeps in flight at once. Heartbeats that arrive while they are busy wait
// and go together in the next pipeline. The default is 2.
func WithPipelines(n int) Option {
	return func(s *Store) {
		if n > 0 {
			s.batch.max = n
		}
	}
}

// New returns a Store over client, which may be a *redis.Client, a
// *redis.ClusterClient, a Sentinel-backed client or a ring of any of them
// that routes by key. The store uses client but does not own it: Close
// leaves it open.
func New(client redis.UniversalClient, opts ...Option) *Store {
	_, cluster := client.(*redis.ClusterClient)
	s := &Store{
		client:  client,
		prefix:  "presence",
		grace:   time.Minute,
		sharded: cluster,
		health:  15 * time.Second,
		expireN: 1000,
		inner:   newInnerCache(),
		rooms:   make(map[string]*watched),
		subs:    make(map[*subscription]struct{}),
	}
	s.batch.max = 2
	for _, o := range opts {
		o(s)
	}
	s.pub = "PUBLISH"
	if s.sharded {
		s.pub = "SPUBLISH"
	}
	s.batch.s = s
	s.batch.next = make(chan []*waiter)
	s.hub.s = s
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

func opError(op string, err error) error {
	return fmt.Errorf("redisstore: %s: %w", op, err)
}

// fail wraps err, the failure of op, or presence.ErrClosed instead when
// the store was closed meanwhile: a call that Close interrupts reports
// the close, not the cancellation it caused.
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() {
		return opError(op, presence.ErrClosed)
	}
	return opError(op, err)
}

func (s *Store) check(op string) error {
	if s.closed.Load() {
		return opError(op, presence.ErrClosed)
	}
	return nil
}

func (s *Store) keys(room string) roomKeys { return keysFor(s.prefix, room) }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Heartbeat implements presence.Store. A refresh of a session this store
// created or refreshed before, with the same TTL and no metadata, is two
// plain ZADD commands; other heartbeats run a script. Concurrent heartbeats
// share pipelines. A caller whose ctx ends while waiting gets ctx's error;
// its heartbeat may or may not have taken effect.
func (s *Store) Heartbeat(ctx context.Context, b presence.Beat) error {
	const op = "heartbeat"
	if err := s.check(op); err != nil {
		return err
	}
	h := newHeartbeat(s, b)
	if err := s.batch.do(ctx, h); err != nil {
		return s.fail(op, err)
	}
	return nil
}

// Leave implements presence.Store.
func (s *Store) Leave(ctx context.Context, room, userID, sessionID string, now time.Time) error {
	const op = "leave"
	if err := s.check(op); err != nil {
		return err
	}
	k := s.keys(room)
	s.inner.forget(room, userID, sessionID)
	res, err := leaveScript.Run(ctx, s.client, k.all(), s.pub, ms(now), userID, sessionID).Int64()
	if err != nil {
		return s.fail(op, err)
	}
	if res > 1 {
		s.lowerNext(room, res) // the user's deadline moved earlier
	}
	return nil
}

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
	e := s.lists.get(room)
	var k roomKeys
	if e != nil {
		k = e.keys
	} else {
		k = s.keys(room)
	}
	if e != nil {
		pipe := s.client.Pipeline()
		// Without users of several sessions at this version, the
		// sessions zset is empty.
		users, sessions := readZSets(ctx, pipe, k, dump, e.multi)
		version := pipe.HGet(ctx, k.info, "")
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isReplyError(err) {
			return nil, s.fail(op, err)
		}
		u, uok := users()
		ss, sok := sessions()
		if version.Err() == nil && version.Val() == e.version && uok && sok {
			if vs, err := assemble(u, ss, e.recs, nowMs); err == nil {
				return vs, nil
			}
		}
		if dump && !(uok && sok) {
			s.noDump.Store(true) // this server's DUMP is not for us
			dump = false
		}
	}
	vs, err := s.listAtomically(ctx, room, k, nowMs, dump)
	if errors.Is(err, errNotDecoded) {
		s.noDump.Store(true) // this server's DUMP is not for us
		vs, err = s.listAtomically(ctx, room, k, nowMs, false)
	}
	if err != nil {
		return nil, s.fail(op, err)
	}
	return vs, nil
}

var errNotDecoded = errors.New("zset not decoded")

// listAtomically reads a room's zsets and records in one MULTI/EXEC,
// keeps the records and assembles the viewers. It returns errNotDecoded
// if dump is set and a DUMP reply could not be decoded.
func (s *Store) listAtomically(ctx context.Context, room string, k roomKeys, now int64, dump bool) ([]presence.Viewer, error) {
	pipe := s.client.TxPipeline()
	users, sessions := readZSets(ctx, pipe, k, dump, true)
	info := pipe.HGetAll(ctx, k.info)
	if _, err := pipe.Exec(ctx); err != nil && !(dump && isReplyError(err)) {
		return nil, err
	}
	u, uok := users()
	ss, sok := sessions()
	if !uok || !sok {
		if dump {
			return nil, errNotDecoded
		}
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
// that give their members and scores once the pipeline ran, or false.
func readZSets(ctx context.Context, pipe redis.Pipeliner, k roomKeys, dump, withSessions bool) (users, sessions func() ([]scored, bool)) {
	read := func(key string) func() ([]scored, bool) {
		if dump {
			c := pipe.Dump(ctx, key)
			return func() ([]scored, bool) {
				p, err := c.Result()
				if err == redis.Nil {
					return nil, true
				}
				if err != nil {
					return nil, false
				}
				return decodeDump(p)
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
// future. Members without a record are left out, as the scripts would
// remove them; a member that does not parse is an error.
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
			return nil, errMember
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

// Count implements presence.Store with one ZCOUNT.
func (s *Store) Count(ctx context.Context, room string, now time.Time) (int, error) {
	const op = "count"
	if err := s.check(op); err != nil {
		return 0, err
	}
	n, err := s.client.ZCount(ctx, s.keys(room).users, "("+ms(now), "+inf").Result()
	if err != nil {
		return 0, s.fail(op, err)
	}
	return int(n), nil
}

// Expire implements presence.Store. It covers the rooms this store has a
// subscription on whose known next deadline (see watched.next) is at or
// before now, in one pipeline of one script per room, and leaves the other
// rooms to their keys' TTLs (reads hide expired viewers anyway). Its cost
// thus grows with the rooms that have something due, not with the rooms
// watched. The script removes the room's due sessions and publishes the
// departures, so whichever process removes a user is the only one that
// reports it.
func (s *Store) Expire(ctx context.Context, now time.Time) (time.Time, error) {
	const op = "expire"
	if err := s.check(op); err != nil {
		return time.Time{}, err
	}
	nowMs := now.UnixMilli()
	next := int64(math.MaxInt64)
	// One Expire at a time, so that each sees every lowering made while
	// its scripts ran.
	s.expireMu.Lock()
	defer s.expireMu.Unlock()
	var rooms []*watched
	s.mu.RLock()
	for _, w := range s.rooms {
		w.mu.Lock()
		if w.next > nowMs {
			next = min(next, w.next)
		} else {
			w.lowest = math.MaxInt64
			rooms = append(rooms, w)
		}
		w.mu.Unlock()
	}
	s.mu.RUnlock()

	for len(rooms) > 0 {
		cmds, err := s.runPipelined(ctx, expireScript, len(rooms), func(i int) ([]string, []any) {
			return rooms[i].keys.all(), []any{s.pub, nowMs, s.expireN}
		})
		if err != nil {
			return time.Time{}, s.fail(op, err)
		}
		more := rooms[:0]
		for i, c := range cmds {
			res, err := c.Int64Slice()
			if err != nil || len(res) != 2 {
				return time.Time{}, opError(op, fmt.Errorf("malformed reply %v: %w", res, err))
			}
			if res[1] == 1 {
				more = append(more, rooms[i]) // stopped at the limit
				continue
			}
			found := res[0]
			if found == 0 {
				found = math.MaxInt64
			}
			w := rooms[i]
			w.mu.Lock()
			// A lowering since the snapshot may come from a change the
			// script did not see: keep it.
			low := w.lowest
			if low != 0 && low <= nowMs {
				// A deadline already due when the script ran was
				// covered by it: a late event cannot make it pending.
				low = math.MaxInt64
			}
			w.next = min(found, low)
			if w.next != 0 {
				next = min(next, w.next)
			} else {
				// Unknown (a Resync came meanwhile): the next Expire
				// runs the script again, and what it found stands.
				next = min(next, found)
			}
			w.mu.Unlock()
		}
		rooms = more
	}
	if next == math.MaxInt64 {
		return time.Time{}, nil
	}
	return time.UnixMilli(next), nil
}

// runPipelined runs script n times in one pipeline, with the keys and
// arguments args(i) gives, and again with EVAL for the calls the server
// had no cached script for.
func (s *Store) runPipelined(ctx context.Context, script *redis.Script, n int, args func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	cmds := make([]*redis.Cmd, n)
	pipe := s.client.Pipeline()
	for i := range n {
		k, a := args(i)
		cmds[i] = script.EvalSha(ctx, pipe, k, a...)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		if !isNoScript(err) {
			return nil, err
		}
		pipe = s.client.Pipeline()
		for i, c := range cmds {
			if isNoScript(c.Err()) {
				k, a := args(i)
				cmds[i] = script.Eval(ctx, pipe, k, a...)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
	}
	return cmds, nil
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// Close stops every goroutine the store started and ends its
// subscriptions. It does not close the Redis client. Calls after Close
// return an error wrapping presence.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.cancel()
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.stop()
	}
	s.hub.close()
	s.batch.close()
	s.wg.Wait()
	return nil
}
