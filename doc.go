// Package presence tells a web application who is in a room right now.
//
// A room is any string the host names: a document, a dashboard, a live
// feed, a game lobby. Clients keep themselves present with heartbeats that
// carry a TTL; a user is present from its first heartbeat until it leaves or
// its deadline passes without another heartbeat:
//
//	p := presence.New(memstore.New()) // or redisstore.New(redisClient)
//	defer p.Close()
//	err := p.Heartbeat(ctx, "project-x:session-42", userID, 10*time.Second)
//	viewers, err := p.List(ctx, "project-x:session-42")
//
// # Guarantees
//
//   - Heartbeat is idempotent: repeating it for one (room, user) never makes
//     a second viewer; it moves the deadline to now+ttl.
//   - A user may be present from several sessions (tabs, devices) at once,
//     named with WithSession. It counts once and leaves when its last
//     session ends.
//   - A viewer may carry small opaque metadata (WithMeta), returned by List
//     and sent with events.
//   - List returns live viewers ordered by first-seen time, then user ID.
//     Count does not build the list.
//   - Leave and expiry at the deadline are departures, each reported once
//     to every watcher, even with several processes sharing one store.
//   - Watch streams a snapshot, then joins, leaves and metadata updates.
//     Refreshes send nothing. A slow watcher never blocks a heartbeat; one
//     that falls behind receives a Resync with the true state.
//   - All deadlines come from the Presence's clock (WithClock), so tests
//     drive expiry with clock.NewMock() and no sleeps.
//   - Close stops every goroutine the Presence started.
//   - Bad input (empty or oversized IDs, TTLs outside the limits, oversized
//     metadata, use after Close) returns an error wrapping a sentinel such
//     as ErrInvalidRoom, and changes nothing. IDs are otherwise arbitrary
//     bytes.
//
// # Stores
//
// A Store holds the state. The module provides memstore, in-process and
// dependency-free, and redisstore, which several app servers share. Any
// type implementing Store works, and the storetest package checks that it
// behaves as the Presence requires; a Store that also implements
// Subscriber can be watched.
package presence
