// Presence client, served by presencehttp. An ES module with no
// dependencies:
//
//   import { join } from "/presence/client.js";
//   const room = join("lobby", {
//     user: "anon-3f9c",                 // anonymous mode only
//     meta: { name: "Ada" },             // the server may override it
//     onViewers(viewers) { ... },        // the live list, oldest first
//   });
//   room.leave();
//
// It keeps this tab present with heartbeats at the interval the server
// sets (with jitter, at once when the tab becomes visible again, backing
// off while the server is unreachable), says goodbye with a beacon on
// pagehide, and follows the room's changes over Server-Sent Events.

const defaultBase = new URL(".", import.meta.url);
const rooms = new Set(); // joined rooms, for pagehide and pageshow

// The tab's session ID lives in memory. It is written to sessionStorage
// only while the page is hidden, so a reloaded tab keeps it while a
// duplicated tab (which copies sessionStorage when open) draws its own.
const sessionKey = "presence.session";
const session = takeSession();

function takeSession() {
  let id = null;
  try {
    id = sessionStorage.getItem(sessionKey);
    sessionStorage.removeItem(sessionKey);
  } catch {} // storage can be disabled; the ID then lasts one page load
  if (!id || !/^[A-Za-z0-9_.-]{1,64}$/.test(id)) {
    const b = crypto.getRandomValues(new Uint8Array(16)); // works without https too
    id = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  }
  return id;
}

addEventListener("pagehide", () => {
  try { sessionStorage.setItem(sessionKey, session); } catch {}
  for (const r of rooms) r.beacon();
});

addEventListener("pageshow", (e) => {
  try { sessionStorage.removeItem(sessionKey); } catch {}
  if (e.persisted) for (const r of rooms) r.resume(); // back from the bfcache
});

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") for (const r of rooms) r.beat();
});

const maxBackoff = 30000; // ms

// join keeps this tab present in room until leave is called or the page
// goes away, and returns the room's live state. Options:
//   base       URL of the handler; default: where this file was served from
//   user       the user ID, in anonymous mode (ignored with an identity hook)
//   meta       metadata sent with every heartbeat (any JSON value)
//   onViewers  called with the viewer list, oldest first, on every change
//   onBeat     called with the server's answer when a heartbeat succeeds:
//              { user, count, ttl_ms, interval_ms }
//   onError    called with an Error when a heartbeat fails
export function join(room, opts = {}) {
  const base = new URL(opts.base ?? defaultBase, location.href);
  const url = (path) => new URL(path, base).href;
  const viewers = new Map(); // user → viewer
  let interval = 5000, failures = 0, timer = 0, stopped = false;
  let busy = false, again = false; // a beat is in flight; another is wanted
  let user = opts.user ?? null, events = null;
  let inflight = null; // the AbortController of the heartbeat in flight
  let streamFailures = 0;

  const body = () => JSON.stringify({ room, session, user: opts.user, meta: opts.meta });

  const emit = () => {
    const list = [...viewers.values()].sort((a, b) =>
      a.first_seen < b.first_seen ? -1 : a.first_seen > b.first_seen ? 1 :
      a.user < b.user ? -1 : a.user > b.user ? 1 : 0);
    opts.onViewers?.(list);
  };

  async function beat() {
    if (stopped) return;
    if (busy) { again = true; return; }
    busy = true;
    clearTimeout(timer);
    let delay;
    try {
      inflight = new AbortController();
      const res = await fetch(url("heartbeat"), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: body(),
        signal: inflight.signal,
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error(data.error || `heartbeat: HTTP ${res.status}`);
      interval = data.interval_ms || interval;
      user = data.user;
      failures = 0;
      delay = interval * (0.8 + 0.2 * Math.random()); // jitter, never late
      opts.onBeat?.(data);
    } catch (err) {
      failures++;
      delay = Math.min(maxBackoff, 1000 * 2 ** failures) * (0.5 + 0.5 * Math.random());
      opts.onError?.(err);
    }
    busy = false;
    inflight = null;
    if (again) { again = false; delay = 0; }
    if (!stopped) timer = setTimeout(beat, delay);
  }

  function listen() {
    events?.close();
    events = new EventSource(url("events") + "?room=" + encodeURIComponent(room));
    const replace = (e) => {
      viewers.clear();
      for (const v of JSON.parse(e.data).viewers) viewers.set(v.user, v);
      emit();
    };
    const set = (e) => {
      const v = JSON.parse(e.data).viewer;
      viewers.set(v.user, v);
      emit();
    };
    events.addEventListener("snapshot", replace);
    events.addEventListener("resync", replace);
    events.addEventListener("join", set);
    events.addEventListener("update", set);
    events.addEventListener("leave", (e) => {
      viewers.delete(JSON.parse(e.data).viewer.user);
      emit();
    });
    // EventSource retries lost connections itself, but gives up on an
    // error status (a server shutting down answers 503): retry later.
    // Refusals back off like heartbeats, so a full room is not hammered.
    events.onopen = () => { streamFailures = 0; };
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED && !stopped) {
        streamFailures++;
        const wait = Math.min(maxBackoff, 2000 * 2 ** streamFailures) * (0.5 + 0.5 * Math.random());
        setTimeout(() => stopped || listen(), wait);
      }
    };
  }

  const r = {
    room,
    // The viewers as last reported, oldest first.
    get viewers() { return [...viewers.values()]; },
    get count() { return viewers.size; },
    // This tab's user ID, as the server knows it, once a heartbeat succeeded.
    get user() { return user; },
    session,
    // setMeta replaces this tab's metadata and sends it at once.
    setMeta(meta) { opts.meta = meta; beat(); },
    // leave ends this tab's session in the room and stops following it.
    leave() {
      if (stopped) return;
      stopped = true;
      rooms.delete(r);
      clearTimeout(timer);
      inflight?.abort(); // a heartbeat landing after the leave would rejoin
      events?.close();
      fetch(url("leave"), { method: "POST", body: body(), keepalive: true }).catch(() => {});
    },
    beat,
    beacon() {
      if (stopped) return;
      inflight?.abort();
      navigator.sendBeacon(url("leave"), body());
    },
    resume() {
      if (stopped) return;
      beat();
      if (!events || events.readyState === EventSource.CLOSED) listen();
    },
  };
  rooms.add(r);
  listen();
  beat();
  return r;
}
