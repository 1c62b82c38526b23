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

// WithPipelines sets how many pipelines of concurrent heartbeats, leaves
// and Lists the store keeps in flight at once, each on a connection of its
// own. Calls that arrive while they are all busy wait and go together in
// the next pipeline. The default is 4.
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
	s.batch.max = 4
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
// created or refreshed before, with the same TTL and no metadata, is one
// plain ZADD (two for a user with several sessions); other heartbeats run
// a script. Concurrent heartbeats share pipelines. A caller whose ctx ends
// while waiting gets ctx's error; its heartbeat may or may not have taken
// effect.
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

// Leave implements presence.Store. Concurrent leaves share pipelines with
// heartbeats and Lists. A caller whose ctx ends while waiting gets ctx's
// error; its leave may or may not have taken effect.
func (s *Store) Leave(ctx context.Context, room, userID, sessionID string, now time.Time) error {
	const op = "leave"
	if err := s.check(op); err != nil {
		return err
	}
	s.inner.forget(room, userID, sessionID)
	k := s.keys(room)
	l := &scriptRun{script: leaveScript, keys: k.all(), args: []any{s.pub, ms(now), userID, sessionID, s.grace.Milliseconds()}}
	if err := s.batch.do(ctx, l); err != nil {
		return s.fail(op, err)
	}
	res, err := l.cmd.Int64()
	if err != nil {
		return s.fail(op, err)
	}
	if res > 1 {
		s.lowerNext(room, res) // the user's deadline moved earlier
	}
	return nil
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
			return rooms[i].keys.all(), []any{s.pub, nowMs, s.expireN, s.grace.Milliseconds()}
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
	runs := make([]scriptRun, n)
	for i := range runs {
		k, a := args(i)
		runs[i] = scriptRun{script: script, keys: k, args: a}
	}
	for round := 0; round < 2; round++ { // EVALSHA, then EVAL where needed
		pipe := s.client.Pipeline()
		for i := range runs {
			if round == 0 || runs[i].eval {
				runs[i].queue(ctx, pipe)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) && !isNoScript(err) {
			return nil, err
		}
		again := false
		for i := range runs {
			again = (round == 0 && runs[i].settle()) || again
		}
		if !again {
			break
		}
	}
	cmds := make([]*redis.Cmd, n)
	for i := range runs {
		cmds[i] = runs[i].cmd
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
