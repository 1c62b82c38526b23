// Package redisstore is a presence.Store and presence.Subscriber over
// Redis, through github.com/redis/go-redis/v9. Several app servers, each
// with its own presence.Presence over a Store on one Redis (standalone,
// Sentinel or Cluster), share one set of viewers and one stream of
// changes.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	p := presence.New(redisstore.New(rdb))
//	defer p.Close() // closes the store, not rdb
//
// # Key layout
//
// Every key of a room starts with the prefix (default "presence", with '%',
// '{' and '}' escaped as %25, %7B and %7D) and the room's hash tag: the room
// ID in unpadded URL-safe base64 between braces. The base64 alphabet has no
// braces, so any room ID, whatever its bytes, maps to its own tag and every
// key of the room to one Cluster slot:
//
//	<prefix>:{<base64url(room)>}:u  sorted set: one member per present user, scored by its latest deadline
//	<prefix>:{<base64url(room)>}:s  sorted set: the sessions of users with several, scored by their deadlines
//	<prefix>:{<base64url(room)>}:i  hash: user ID → msgpack(first seen, metadata, last seen, sessions),
//	                                 and "" → the version of those records
//	<prefix>:{<base64url(room)>}:c  pub/sub channel of the room's changes
//
// A session's member is "<len(user)>:<user><ttl>:<session>": the decimal
// byte length of the user ID, the user ID, the session's TTL in
// milliseconds and the session ID. The length makes the encoding
// injective, so no user or session ID, with colons, newlines, NUL or
// invalid UTF-8, can collide with another; the TTL gives the session's
// last heartbeat as its deadline minus its TTL. A user with one session,
// the common case, is that session's member in the users zset and nothing
// in the sessions zset; a user with several is "<len(user)>:<user>" in the
// users zset and has each session's member in the sessions zset. Scores
// are Unix milliseconds.
//
// Every key carries a TTL: each write extends it, never shortens it, to
// the deadline it sets plus a grace period (WithGrace, one minute by
// default), measured from when Redis receives it. A room nobody touches
// any more thus disappears on its own, even if no process expires it.
//
// # Time
//
// Deadlines and "now" come from each Presence's clock, never from the
// Redis server's, so a Presence driven by a mock clock behaves the same on
// Redis as in memory. App servers sharing a Redis must therefore have
// clocks that agree to well under a TTL: a server whose clock runs ahead
// sees other servers' viewers expire early.
//
// # Costs
//
// Count is one ZCOUNT. List runs no script and leaves due sessions for
// writers to remove. It reads the zsets with DUMP, whose reply is the
// set's memory as Redis keeps it, decoded in Go: on Redis 7.0 that costs
// about a tenth of ZRANGE WITHSCORES, which formats every score as a
// double. (Where DUMP is refused or its format is unknown, as before Redis
// 7.0, List uses ZRANGE WITHSCORES instead.) A store keeps the user
// records it last read for up to 1,024 rooms, with their version (which
// every change of a record changes; a refresh changes none). When the
// version is unchanged, List is one pipeline of DUMP of the users zset
// (and of the sessions zset if some user has several sessions) and HGET
// of the version. Otherwise it reads the zsets and the info hash (HGETALL)
// in one MULTI/EXEC, which Redis runs atomically with respect to the
// scripts. Either way it assembles the viewers in Go from one state of the
// room.
//
// Leave, joins, metadata updates and expiry are one Lua script each,
// which removes due sessions and publishes the events atomically, so a
// join or a departure is reported exactly once across all processes. A
// refresh of a session the same store kept alive before, with the same
// TTL and no metadata, skips the script: it is a ZADD XX GT CH on the
// session's member (and, for a user with several sessions, a ZADD XX GT
// on the user's), plus, about once per grace period, PEXPIRE GT on the
// room's keys, which Redis runs at the cost of plain commands. Concurrent
// heartbeats, leaves and Lists share pipelines (see WithPipelines). A
// leave forgets what the store knew of the session, so that a rejoin goes
// straight to the script.
//
// A heartbeat with presence.Beat.MaxViewers set checks the cap inside the
// heartbeat script (the user's record and a ZCOUNT on the users zset), so
// the check and the join are atomic across every process: a join into a
// room that already holds that many live users changes nothing and fails
// with presence.ErrRoomFull. Likewise with presence.Beat.MaxSessions, a new
// session of a user that already has that many live sessions in the room
// fails with presence.ErrTooManySessions (the script reads the user's
// record and its sessions' deadlines first). Refreshes of present users and
// existing sessions are never refused.
//
// Expire covers the rooms the store has a subscription on (the rooms a
// Presence watches); other rooms' expired viewers are hidden from reads
// and removed with their keys' TTLs, or by the next heartbeat or leave of
// the same user, which reports their departure. For each watched room the
// store keeps a time at or before every present user's deadline, and
// Expire runs its script only on the rooms where that time has come, so
// its cost grows with the rooms that have something due, not with the
// rooms watched. The script sets that time to the earliest deadline left;
// whatever may move a user's deadline earlier lowers it: this store's own
// heartbeats and leaves, and the Join and Update events of every process;
// a Resync makes it unknown, so the next Expire runs the room's script.
// For that, a heartbeat or a leave that moves a present user's deadline
// earlier (a shorter TTL, or ending the session that lived longest)
// publishes an Update with unchanged metadata and the new deadline, which
// Presence does not pass on to watchers; and a refresh that skips the
// script only ever moves a deadline later (ZADD XX GT CH), so it never
// needs to.
//
// # Events
//
// Scripts publish each change on the room's channel: with SPUBLISH and
// SSUBSCRIBE on a *redis.ClusterClient, with PUBLISH and SUBSCRIBE
// otherwise (see WithShardedPubSub). With classic pub/sub, all the rooms a
// store watches share one connection and one goroutine: channels are
// subscribed and unsubscribed on it as rooms gain their first and lose
// their last subscription, and every room's callbacks run on that
// goroutine in turn (so a callback that blocks delays every room). With sharded pub/sub, each subscription still
// has its own connection (a sharded connection serves the slots of one
// node only). When a connection drops, the store reconnects and, once
// Redis confirms a room's subscription again, sends the room's
// subscribers a Resync event, as it does for a message it cannot decode.
package redisstore
