package redisstore

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// subscription is one Subscribe call: a pub/sub connection to the room's
// channel and the goroutine that reads it and calls fn.
type subscription struct {
	s    *Store
	room string
	ch   string
	fn   func(presence.Event)

	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu sync.Mutex
	ps *redis.PubSub // sharded: the current connection; nil between connections

	// classic: held while fn runs, so that once stop returns fn is not
	// running and never runs again.
	call    sync.Mutex
	stopped bool // guarded by call
}

// Subscribe implements presence.Subscriber over Redis pub/sub, sharded in
// Cluster. It returns once Redis has confirmed the subscription. With
// classic pub/sub, every room of the store shares one connection and one
// goroutine (see hub), which calls each room's callbacks in the order Redis
// published the room's changes. With sharded pub/sub, every subscription
// has its own connection and goroutine. When a connection drops, it is
// reconnected with backoff and, once Redis confirms a room's subscription
// again, the room's callbacks get a Resync event; so do they for a message
// that cannot be decoded.
func (s *Store) Subscribe(ctx context.Context, room string, fn func(presence.Event)) (func(), error) {
	const op = "subscribe"
	if err := s.check(op); err != nil {
		return nil, err
	}
	k := s.keys(room)
	sub := &subscription{s: s, room: room, ch: k.channel, fn: fn, done: make(chan struct{})}
	sub.ctx, sub.cancel = context.WithCancel(s.ctx)

	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		sub.cancel()
		return nil, opError(op, presence.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	w := s.rooms[room]
	if w == nil {
		w = &watched{keys: k}
		s.rooms[room] = w
	}
	w.refs++
	if s.sharded {
		s.wg.Add(1)
	}
	s.mu.Unlock()

	if !s.sharded {
		return s.hub.subscribe(ctx, sub)
	}
	ready := make(chan error, 1)
	go sub.run(ready)
	return s.awaitConfirmed(ctx, op, sub, ready)
}

// awaitConfirmed waits until Redis confirms sub (a nil on confirmed), or
// its subscribing fails, or ctx ends; on failure it stops sub.
func (s *Store) awaitConfirmed(ctx context.Context, op string, sub *subscription, confirmed <-chan error) (func(), error) {
	select {
	case err := <-confirmed:
		if err != nil {
			sub.stop()
			return nil, s.fail(op, err)
		}
	case <-ctx.Done():
		sub.stop()
		return nil, s.fail(op, ctx.Err())
	}
	return sub.stop, nil
}

// stop ends the subscription and waits for its goroutine. It is
// idempotent.
func (sub *subscription) stop() {
	sub.cancel()
	if sub.s.sharded {
		sub.mu.Lock()
		if sub.ps != nil {
			_ = sub.ps.Close()
		}
		sub.mu.Unlock()
		<-sub.done
	} else {
		sub.s.hub.remove(sub)
	}

	s := sub.s
	s.mu.Lock()
	if _, ok := s.subs[sub]; ok {
		delete(s.subs, sub)
		if w := s.rooms[sub.room]; w != nil {
			if w.refs--; w.refs == 0 {
				delete(s.rooms, sub.room)
			}
		}
	}
	s.mu.Unlock()
}

// run keeps the subscription connected and delivers its messages. It
// reports on ready whether the first connection succeeded.
func (sub *subscription) run(ready chan<- error) {
	defer sub.s.wg.Done()
	defer close(sub.done)
	first := true
	backoff := 10 * time.Millisecond
	for {
		confirmed, err := sub.connect(first, ready)
		if first {
			if !confirmed {
				ready <- err
				return
			}
			first = false
		}
		if sub.ctx.Err() != nil {
			return
		}
		if confirmed {
			backoff = 10 * time.Millisecond
		}
		// The connection failed or dropped: changes may be lost. The
		// next confirmed connection resyncs the subscriber.
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-sub.ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// connect opens one pub/sub connection and reads it until it fails or the
// subscription stops, and reports whether Redis confirmed the subscription.
// On the first connection it reports the confirmation on ready; on later
// ones it sends a Resync once Redis confirms.
func (sub *subscription) connect(first bool, ready chan<- error) (confirmed bool, err error) {
	s := sub.s
	var ps *redis.PubSub
	if s.sharded {
		ps = s.client.SSubscribe(sub.ctx)
	} else {
		ps = s.client.Subscribe(sub.ctx)
	}
	sub.mu.Lock()
	if sub.ctx.Err() != nil {
		sub.mu.Unlock()
		_ = ps.Close()
		return false, sub.ctx.Err()
	}
	sub.ps = ps
	sub.mu.Unlock()
	defer func() {
		sub.mu.Lock()
		sub.ps = nil
		sub.mu.Unlock()
		_ = ps.Close()
	}()

	if s.sharded {
		err = ps.SSubscribe(sub.ctx, sub.ch)
	} else {
		err = ps.Subscribe(sub.ctx, sub.ch)
	}
	if err != nil {
		return false, err
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(sub.ctx, s.health)
		if err != nil {
			if sub.ctx.Err() != nil {
				return confirmed, sub.ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && confirmed && !pinged {
				if err := ps.Ping(sub.ctx); err != nil {
					return confirmed, err
				}
				pinged = true
				continue
			}
			return confirmed, err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Channel != sub.ch {
				continue
			}
			switch m.Kind {
			case "subscribe", "ssubscribe":
				if confirmed {
					// A reconnection inside the client.
					sub.deliver(presence.Event{Kind: presence.Resync, Room: sub.room})
					continue
				}
				confirmed = true
				if first {
					ready <- nil
				} else {
					sub.deliver(presence.Event{Kind: presence.Resync, Room: sub.room})
				}
			default:
				// The server dropped the subscription (a slot moved).
				return confirmed, errors.New("unsubscribed by the server")
			}
		case *redis.Message:
			if !confirmed || m.Channel != sub.ch {
				continue
			}
			ev, ok := decodeEvent(sub.room, m.Payload)
			if !ok {
				ev = presence.Event{Kind: presence.Resync, Room: sub.room}
			}
			sub.deliver(ev)
		}
	}
}

// deliver lowers the room's known next deadline by what ev says, before
// fn learns of ev (and the Presence arms its timer), then calls fn.
func (sub *subscription) deliver(ev presence.Event) {
	switch ev.Kind {
	case presence.Join, presence.Update:
		sub.s.lowerNext(sub.room, ev.Viewer.Deadline.UnixMilli())
	case presence.Resync:
		sub.s.lowerNext(sub.room, 0) // changes may be lost: unknown
	}
	sub.fn(ev)
}

// decodeEvent parses what the scripts publish:
//
//	1,kind,reason,time,first,last,deadline,sessions,len(user),len(meta):<user><meta>
//
// with times in Unix ms. It reports false for anything else.
func decodeEvent(room, p string) (presence.Event, bool) {
	head, body, ok := strings.Cut(p, ":")
	if !ok {
		return presence.Event{}, false
	}
	var f [10]int64
	for i := range f {
		var field string
		field, head, ok = strings.Cut(head, ",")
		if ok != (i < len(f)-1) {
			return presence.Event{}, false
		}
		n, err := strconv.ParseInt(field, 10, 64)
		if err != nil || n < 0 {
			return presence.Event{}, false
		}
		f[i] = n
	}
	version, kind, reason := f[0], presence.EventKind(f[1]), presence.Reason(f[2])
	userLen, metaLen := f[8], f[9]
	if version != 1 || userLen+metaLen != int64(len(body)) || userLen == 0 || f[7] > 1<<31 {
		return presence.Event{}, false
	}
	switch {
	case kind == presence.Join && reason == 0:
	case kind == presence.Update && reason == 0:
	case kind == presence.Leave && (reason == presence.Left || reason == presence.Expired):
	default:
		return presence.Event{}, false
	}
	ev := presence.Event{
		Kind:   kind,
		Room:   room,
		Time:   time.UnixMilli(f[3]),
		Reason: reason,
		Viewer: presence.Viewer{
			UserID:    body[:userLen],
			FirstSeen: time.UnixMilli(f[4]),
			LastSeen:  time.UnixMilli(f[5]),
			Deadline:  time.UnixMilli(f[6]),
			Sessions:  int(f[7]),
		},
	}
	if metaLen > 0 {
		ev.Viewer.Meta = []byte(body[userLen:])
	}
	return ev, true
}
