package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
)

// ttl is how long every heartbeat keeps a viewer present; it matches
// centrifuge's default PresenceTTL.
const ttl = time.Minute

// A viewer is one user in one room, with everything any system needs
// prepared in advance so that the measured loops allocate nothing of their
// own.
type viewer struct {
	room, user string
	info       *centrifuge.ClientInfo // nil: a new one for each AddPresence
}

// viewers returns n viewers spread round-robin over rooms, with IDs that
// start with tag.
func viewers(tag string, n, rooms int) []viewer {
	roomIDs := make([]string, rooms)
	for i := range roomIDs {
		roomIDs[i] = "room-" + strconv.Itoa(i)
	}
	vs := make([]viewer, n)
	for i := range vs {
		u := tag + "-user-" + strconv.Itoa(i)
		vs[i] = viewer{room: roomIDs[i%rooms], user: u, info: &centrifuge.ClientInfo{ClientID: u, UserID: u}}
	}
	return vs
}

// A system is one presence implementation under test, reduced to the
// operations the workloads need. Every method is safe for concurrent use.
type system interface {
	heartbeat(ctx context.Context, v *viewer) error // join or refresh
	leave(ctx context.Context, v *viewer) error
	list(ctx context.Context, room string) (int, error)
	count(ctx context.Context, room string) (int, error)
	close() error
}

// A kind names a system and makes fresh instances of it.
type kind struct {
	name  string
	ours  bool // one of our stores, rather than a peer or the baseline
	redis bool
	// open returns an empty instance; over Redis its keys start with
	// prefix.
	open func(env *env, prefix string) (system, error)
}

var (
	memStore = kind{name: "memstore", ours: true, open: func(*env, string) (system, error) {
		return storeSystem{memstore.New()}, nil
	}}
	memPresence = kind{name: "Presence/memstore", ours: true, open: func(*env, string) (system, error) {
		return presenceSystem{presence.New(memstore.New())}, nil
	}}
	memCentrifuge = kind{name: "centrifuge", open: func(*env, string) (system, error) {
		m, err := centrifuge.NewMemoryPresenceManager(nil, centrifuge.MemoryPresenceManagerConfig{})
		if err != nil {
			return nil, err
		}
		return centrifugeSystem{m: m}, nil
	}}
	redisStore = kind{name: "redisstore", ours: true, redis: true, open: func(e *env, prefix string) (system, error) {
		return storeSystem{redisstore.New(e.client, redisstore.WithPrefix(prefix))}, nil
	}}
	redisPresence = kind{name: "Presence/redisstore", ours: true, redis: true, open: func(e *env, prefix string) (system, error) {
		return presenceSystem{presence.New(redisstore.New(e.client, redisstore.WithPrefix(prefix)))}, nil
	}}
	redisCentrifuge = kind{name: "centrifuge", redis: true, open: openCentrifugeRedis}
	redisBaseline   = kind{name: "go-redis", redis: true, open: func(e *env, prefix string) (system, error) {
		return baselineSystem{c: e.baseline, prefix: prefix + ":"}, nil
	}}
)

// storeSystem drives a presence.Store directly, as the Presence would: with
// the time in milliseconds and a deadline ttl later.
type storeSystem struct{ s presence.Store }

func now() time.Time { return time.UnixMilli(time.Now().UnixMilli()) }

func (s storeSystem) heartbeat(ctx context.Context, v *viewer) error {
	t := now()
	return s.s.Heartbeat(ctx, presence.Beat{Room: v.room, UserID: v.user, Now: t, Deadline: t.Add(ttl)})
}

func (s storeSystem) leave(ctx context.Context, v *viewer) error {
	return s.s.Leave(ctx, v.room, v.user, "", now())
}

func (s storeSystem) list(ctx context.Context, room string) (int, error) {
	vs, err := s.s.List(ctx, room, now())
	return len(vs), err
}

func (s storeSystem) count(ctx context.Context, room string) (int, error) {
	return s.s.Count(ctx, room, now())
}

func (s storeSystem) close() error { return s.s.Close() }

// presenceSystem goes through the public API.
type presenceSystem struct{ p *presence.Presence }

func (s presenceSystem) heartbeat(ctx context.Context, v *viewer) error {
	return s.p.Heartbeat(ctx, v.room, v.user, ttl)
}

func (s presenceSystem) leave(ctx context.Context, v *viewer) error {
	return s.p.Leave(ctx, v.room, v.user)
}

func (s presenceSystem) list(ctx context.Context, room string) (int, error) {
	vs, err := s.p.List(ctx, room)
	return len(vs), err
}

func (s presenceSystem) count(ctx context.Context, room string) (int, error) {
	return s.p.Count(ctx, room)
}

func (s presenceSystem) close() error { return s.p.Close() }

// centrifugeSystem drives a centrifuge PresenceManager, with the user's ID
// as its client ID: one connection per user, as our default session is.
type centrifugeSystem struct {
	m     centrifuge.PresenceManager
	shard *centrifuge.RedisShard // nil in memory
}

func openCentrifugeRedis(e *env, prefix string) (system, error) {
	opt := e.client.Options()
	shard, err := centrifuge.NewRedisShard(nil, centrifuge.RedisShardConfig{
		Address:  opt.Addr,
		DB:       opt.DB,
		User:     opt.Username,
		Password: opt.Password,
	})
	if err != nil {
		return nil, err
	}
	m, err := centrifuge.NewRedisPresenceManager(nil, centrifuge.RedisPresenceManagerConfig{
		Prefix:      prefix,
		PresenceTTL: ttl,
		Shards:      []*centrifuge.RedisShard{shard},
	})
	if err != nil {
		shard.Close()
		return nil, err
	}
	return centrifugeSystem{m: m, shard: shard}, nil
}

func (s centrifugeSystem) heartbeat(_ context.Context, v *viewer) error {
	info := v.info
	if info == nil {
		info = &centrifuge.ClientInfo{ClientID: v.user, UserID: v.user}
	}
	return s.m.AddPresence(v.room, v.user, info)
}

func (s centrifugeSystem) leave(_ context.Context, v *viewer) error {
	return s.m.RemovePresence(v.room, v.user, v.user)
}

func (s centrifugeSystem) list(_ context.Context, room string) (int, error) {
	m, err := s.m.Presence(room)
	return len(m), err
}

func (s centrifugeSystem) count(_ context.Context, room string) (int, error) {
	st, err := s.m.PresenceStats(room)
	return st.NumUsers, err
}

func (s centrifugeSystem) close() error {
	if s.shard != nil {
		s.shard.Close()
	}
	return nil
}

// baselineSystem is the least a Redis presence can do: one sorted set per
// room, scored by deadline. It neither hides nor removes expired viewers.
type baselineSystem struct {
	c      *redis.Client
	prefix string
}

func (s baselineSystem) heartbeat(ctx context.Context, v *viewer) error {
	dl := float64(time.Now().Add(ttl).UnixMilli())
	return s.c.ZAdd(ctx, s.prefix+v.room, redis.Z{Score: dl, Member: v.user}).Err()
}

func (s baselineSystem) leave(ctx context.Context, v *viewer) error {
	return s.c.ZRem(ctx, s.prefix+v.room, v.user).Err()
}

func (s baselineSystem) list(ctx context.Context, room string) (int, error) {
	vs, err := s.c.ZRange(ctx, s.prefix+room, 0, -1).Result()
	return len(vs), err
}

func (s baselineSystem) count(ctx context.Context, room string) (int, error) {
	n, err := s.c.ZCard(ctx, s.prefix+room).Result()
	return int(n), err
}

func (s baselineSystem) close() error { return nil }

// env is what a run shares between cells: the Redis clients, if any, and
// the prefix under which every key of the run lives.
type env struct {
	client   *redis.Client // for our stores
	baseline *redis.Client // for the baseline, so the two share no pool
	prefix   string
	seq      int
}

// newEnv connects to Redis at url, or returns an env without Redis when
// url is "" or "off".
func newEnv(ctx context.Context, url string) (*env, error) {
	b := make([]byte, 6)
	rand.Read(b)
	e := &env{prefix: "presence-bench-" + hex.EncodeToString(b)}
	if url == "" || url == "off" {
		return e, nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	e.client = redis.NewClient(opt)
	e.baseline = redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := e.client.Ping(pctx).Err(); err != nil {
		e.close(ctx)
		return nil, fmt.Errorf("redis not reachable at %s: %w", opt.Addr, err)
	}
	return e, nil
}

// nextPrefix returns a key prefix no other cell of the run uses.
func (e *env) nextPrefix() string {
	e.seq++
	return e.prefix + "-" + strconv.Itoa(e.seq) + "_" // "_" so no prefix extends another
}

// deleteKeys removes every key under prefix.
func (e *env) deleteKeys(ctx context.Context, prefix string) error {
	if e.client == nil {
		return nil
	}
	iter := e.client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := e.client.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return e.client.Unlink(ctx, batch...).Err()
	}
	return nil
}

// close deletes every key of the run and closes the clients.
func (e *env) close(ctx context.Context) error {
	if e.client == nil {
		return nil
	}
	err := e.deleteKeys(ctx, e.prefix)
	e.client.Close()
	e.baseline.Close()
	return err
}
