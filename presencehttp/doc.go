// Package presencehttp serves a [presence.Presence] over HTTP to browsers:
// heartbeats, leaving (including navigator.sendBeacon), the viewers of a
// room as JSON, a Server-Sent Events stream of a room's changes, and a small
// dependency-free JavaScript client.
//
// [New] returns an [http.Handler] whose routes are relative to where it is
// mounted. Mount it under a prefix with [http.StripPrefix]:
//
//	mux.Handle("/presence/", http.StripPrefix("/presence", presencehttp.New(p)))
//
// The routes are:
//
//	POST /heartbeat  {"room", "session", "user"?, "meta"?}  → 200 {"user", "count", "ttl_ms", "interval_ms"}
//	POST /leave      {"room", "session", "user"?}           → 204
//	GET  /viewers?room=ROOM                                 → 200 {"room", "count", "viewers": [Viewer...]}
//	GET  /events?room=ROOM                                  → 200 text/event-stream
//	GET  /client.js                                         → the JavaScript client (an ES module)
//
// A Viewer is {"user", "first_seen", "last_seen", "deadline", "sessions",
// "meta"?}, times in RFC 3339 UTC with millisecond precision. Meta is
// emitted verbatim when it holds valid JSON, which is all the handler ever
// stores, and as a JSON string otherwise.
//
// POST bodies are one JSON object, whatever their Content-Type, so that
// navigator.sendBeacon's text/plain strings and Blobs are accepted. Unknown
// fields are ignored. "session" is required: it names the caller's tab or
// device, and /leave ends that session only, so a caller can never end
// another user's presence. "meta" absent keeps the viewer's metadata, null
// clears it, any other JSON value replaces it.
//
// The stream of /events starts with "retry: 2000" (the delay before an
// EventSource reconnects), then sends named events whose data is one JSON
// object:
//
//	snapshot  {"room", "time", "count", "viewers"}  first, the room's viewers
//	join      {"room", "time", "viewer"}
//	update    {"room", "time", "viewer"}            a viewer's metadata changed
//	leave     {"room", "time", "viewer", "reason"}  reason is "left" or "expired"
//	resync    {"room", "time", "count", "viewers"}  replaces the state after a gap
//
// and a comment line ": ping" at the ping interval so that proxies keep the
// connection open. It ends when the client goes away or the Presence closes;
// a reconnecting EventSource starts again from a snapshot. A client that
// stops reading the stream is disconnected (WithStreamWriteTimeout).
//
// The server decides every time: the TTL of a heartbeat is the handler's
// ([WithTTL]), never the client's, and the heartbeat response tells the
// client the interval to beat at (a third of the TTL).
//
// Who a user is comes from [WithIdentity]: the host's authentication maps a
// request to a user ID. Without it the handler is anonymous: clients send
// their own "user", a random ID they generate, which the handler accepts if
// it is 1 to 64 bytes of ASCII letters, digits, '-', '_' and '.'. Anonymous
// IDs are claims, not proofs; use WithIdentity when identity matters.
//
// Errors are answered with a JSON body {"error": "..."} and a status code:
// 400 for malformed input (including a body that is not valid UTF-8) or
// input the Presence rejects (the request then changed nothing), 401 and
// 403 from the identity hook, 403 for a cross-origin POST, 404 for an
// unknown route, 405 for a wrong method, 408 for a body not received within
// WithBodyTimeout, 413 for a body over the limit, 501 for /events when the store cannot be
// watched, and 503 when the Presence is closed, its store fails or a room
// has as many /events streams as presence.WithMaxWatchers allows (with
// Retry-After).
package presencehttp
