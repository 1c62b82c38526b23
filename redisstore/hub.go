package redisstore

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/presence-go/presence"
	"github.com/redis/go-redis/v9"
)

// hub is the one classic pub/sub connection that all of a store's rooms
// share, and the goroutine that reads it. Rooms are subscribed and
// unsubscribed on it as they gain their first and lose their last
// subscription. The go-redis PubSub reconnects on its own after an error
// and subscribes again to every channel; Redis then confirms each one
// anew, and the hub sends the room's callbacks a Resync.
type hub struct {
	s *Store

	mu      sync.Mutex
	ps      *redis.PubSub // nil until the first subscription
	rooms   map[string]*hubRoom
	closed  bool
	started bool
}

// hubRoom is one channel of the hub.
type hubRoom struct {
	room      string
	subs      []*subscription // replaced, never changed in place
	confirmed bool
	waiters   []chan error // Subscribe calls waiting for the confirmation
}

// subscribe adds sub to its room, subscribing the channel if it is new,
// and waits until Redis has confirmed the channel.
func (h *hub) subscribe(ctx context.Context, sub *subscription) (func(), error) {
	const op = "subscribe"
	s := h.s
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		sub.stop()
		return nil, opError(op, presence.ErrClosed)
	}
	if h.ps == nil {
		h.ps = s.client.Subscribe(s.ctx)
		h.rooms = make(map[string]*hubRoom)
	}
	r := h.rooms[sub.ch]
	fresh := r == nil
	if fresh {
		r = &hubRoom{room: sub.room}
		h.rooms[sub.ch] = r
	}
	r.subs = append(r.subs[:len(r.subs):len(r.subs)], sub)
	if r.confirmed {
		h.mu.Unlock()
		return sub.stop, nil
	}
	wait := make(chan error, 1)
	r.waiters = append(r.waiters, wait)
	if fresh {
		// Under h.mu, so that SUBSCRIBE and UNSUBSCRIBE of one channel
		// reach Redis in the order the hub decided them.
		if err := h.ps.Subscribe(ctx, sub.ch); err != nil {
			h.mu.Unlock()
			sub.stop()
			return nil, s.fail(op, err)
		}
	}
	if !h.started {
		h.started = true
		s.wg.Add(1)
		go h.run(h.ps)
	}
	h.mu.Unlock()
	return s.awaitConfirmed(ctx, op, sub, wait)
}

// remove takes sub out of its room, unsubscribing the channel with the
// room's last subscription, and waits until sub's callback is not running.
// It is idempotent.
func (h *hub) remove(sub *subscription) {
	h.mu.Lock()
	if r := h.rooms[sub.ch]; r != nil {
		if i := indexOf(r.subs, sub); i >= 0 {
			subs := make([]*subscription, 0, len(r.subs)-1)
			subs = append(append(subs, r.subs[:i]...), r.subs[i+1:]...)
			r.subs = subs
			if len(subs) == 0 {
				delete(h.rooms, sub.ch)
				for _, w := range r.waiters {
					w <- errors.New("unsubscribed")
				}
				if !h.closed {
					_ = h.ps.Unsubscribe(h.s.ctx, sub.ch)
				}
			}
		}
	}
	h.mu.Unlock()
	sub.call.Lock()
	sub.stopped = true
	sub.call.Unlock()
}

func indexOf(subs []*subscription, sub *subscription) int {
	for i, x := range subs {
		if x == sub {
			return i
		}
	}
	return -1
}

// close closes the connection; the reading goroutine then returns.
func (h *hub) close() {
	h.mu.Lock()
	h.closed = true
	if h.ps != nil {
		_ = h.ps.Close()
	}
	h.mu.Unlock()
}

// run reads the connection until the store closes, dispatching each
// message to its room's callbacks.
func (h *hub) run(ps *redis.PubSub) {
	s := h.s
	defer s.wg.Done()
	backoff := 10 * time.Millisecond
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(s.ctx, s.health)
		if err != nil {
			if s.ctx.Err() != nil || h.isClosed() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				pinged = true
				if err = ps.Ping(s.ctx); err == nil {
					continue
				}
			}
			// The connection failed: the next receive reconnects and
			// subscribes again. Subscribe calls still waiting fail, as
			// they would on a first connection.
			pinged = false
			h.failWaiters(err)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			backoff = 10 * time.Millisecond
			h.mu.Lock()
			r := h.rooms[m.Channel]
			if r == nil {
				h.mu.Unlock()
				continue
			}
			if !r.confirmed {
				r.confirmed = true
				for _, w := range r.waiters {
					w <- nil
				}
				r.waiters = nil
				h.mu.Unlock()
				continue
			}
			subs := r.subs
			h.mu.Unlock()
			// Subscribed again after a reconnection: changes may be lost.
			for _, sub := range subs {
				sub.call.Lock()
				if !sub.stopped {
					sub.deliver(presence.Event{Kind: presence.Resync, Room: sub.room})
				}
				sub.call.Unlock()
			}
		case *redis.Message:
			h.mu.Lock()
			r := h.rooms[m.Channel]
			var subs []*subscription
			if r != nil && r.confirmed {
				subs = r.subs
			}
			h.mu.Unlock()
			if len(subs) == 0 {
				continue
			}
			ev, ok := decodeEvent(r.room, m.Payload)
			if !ok {
				ev = presence.Event{Kind: presence.Resync, Room: r.room}
			}
			for _, sub := range subs {
				sub.call.Lock()
				if !sub.stopped {
					sub.deliver(ev)
				}
				sub.call.Unlock()
			}
		}
	}
}

func (h *hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// failWaiters fails the Subscribe calls waiting for a confirmation, and
// marks their rooms so that a later confirmation confirms nobody twice.
func (h *hub) failWaiters(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rooms {
		if !r.confirmed {
			for _, w := range r.waiters {
				w <- err
			}
			r.waiters = nil
		}
	}
}
