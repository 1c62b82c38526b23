package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/presence-go/presence"
	"github.com/presence-go/presence/examples/viewers/internal/app"
	"github.com/presence-go/presence/memstore"
	"github.com/presence-go/presence/redisstore"
	"github.com/redis/go-redis/v9"
)

// startApp serves the viewers app over a new Presence on store.
func startApp(t *testing.T, store presence.Store, ttl time.Duration) *httptest.Server {
	t.Helper()
	p := presence.New(store)
	srv := httptest.NewServer(app.New(p, ttl))
	t.Cleanup(srv.Close)
	// Runs before srv.Close: closing the Presence ends the event streams
	// that would keep srv.Close waiting.
	t.Cleanup(func() { p.Close() })
	return srv
}

// newBrowser starts a headless Chromium with a fresh profile and returns
// a context for opening tabs in it. It skips the test, or fails it under
// PRESENCE_REQUIRE_BROWSER=1, when no Chromium is installed.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("PRESENCE_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium not found in PATH and PRESENCE_REQUIRE_BROWSER=1 (apt-get install -y chromium)")
		}
		t.Skip("skipping browser test: chromium not found in PATH (apt-get install -y chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(960, 640),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		// Close the browser and wait for it, before the profile
		// directory is removed and the servers are closed.
		stop, cancelStop := context.WithTimeout(ctx, 10*time.Second)
		defer cancelStop()
		if err := chromedp.Cancel(stop); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// tab opens target in a new tab of the browser and waits for the page's
// first viewer list.
func tab(t *testing.T, browser context.Context, target string) (context.Context, context.CancelFunc) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	// The first Run on a tab's context creates the tab, which lives as
	// long as the context of that call: it must have no timeout.
	if err := chromedp.Do(ctx, chromedp.Navigate(target)); err != nil {
		t.Fatalf("opening %s: %v", target, err)
	}
	run, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if _, err := chromedp.Run(run, chromedp.Poll[bool]("document.body.dataset.ready !== undefined")); err != nil {
		t.Fatalf("%s: no viewer list: %v", target, err)
	}
	return ctx, cancel
}

// waitCount waits up to within for the tab's badge to show want viewers.
func waitCount(t *testing.T, tab context.Context, want int, within time.Duration) {
	t.Helper()
	run, stop := context.WithTimeout(tab, within+5*time.Second)
	defer stop()
	expr := fmt.Sprintf("document.getElementById('count').textContent === '%d'", want)
	_, err := chromedp.Run(run, chromedp.Poll[bool](expr,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		diag, cancel := context.WithTimeout(tab, 5*time.Second)
		defer cancel()
		got, derr := chromedp.Run(diag, chromedp.Evaluate[string]("document.getElementById('count').textContent + ' ' + document.body.innerHTML.slice(0, 300)"))
		t.Logf("diag: %v", derr)
		t.Fatalf("badge shows %q, want %d within %v: %v", got, want, within, err)
	}
}

func faces(t *testing.T, tab context.Context) []string {
	t.Helper()
	users, err := chromedp.Run(tab, chromedp.Evaluate[[]string](
		"[...document.querySelectorAll('.face[data-user]')].map((e) => e.dataset.user)"))
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func pageURL(srv *httptest.Server, room, user string) string {
	return srv.URL + "/room/" + url.PathEscape(room) + "?user=" + url.QueryEscape(user)
}

func TestTabsJoinAndLeave(t *testing.T) {
	srv := startApp(t, memstore.New(), 30*time.Second)
	browser := newBrowser(t)
	room := "match:final"

	alice, _ := tab(t, browser, pageURL(srv, room, "alice"))
	bob, closeBob := tab(t, browser, pageURL(srv, room, "bob"))
	waitCount(t, alice, 2, 5*time.Second)
	waitCount(t, bob, 2, 5*time.Second)
	if got := faces(t, alice); len(got) != 2 || got[0] != "alice" || got[1] != "bob" {
		t.Fatalf("alice's faces = %v, want [alice bob], oldest first", got)
	}

	// A second tab of alice's: one viewer with two sessions.
	alice2, closeAlice2 := tab(t, browser, pageURL(srv, room, "alice"))
	waitCount(t, alice2, 2, 5*time.Second)
	closeAlice2()

	// Closing bob's tab sends its pagehide beacon: alice sees him go long
	// before the 30s TTL.
	closeBob()
	start := time.Now()
	waitCount(t, alice, 1, 2*time.Second)
	t.Logf("the other tab saw the closed tab leave after %v", time.Since(start).Round(time.Millisecond))
	if got := faces(t, alice); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("alice's faces = %v, want [alice]: her other tab's leave must not end her presence", got)
	}
}

func TestFrozenTabExpires(t *testing.T) {
	const ttl = 3 * time.Second
	srv := startApp(t, memstore.New(), ttl)
	browser := newBrowser(t)
	room := "expiry"

	alice, _ := tab(t, browser, pageURL(srv, room, "alice"))
	carol, _ := tab(t, browser, pageURL(srv, room, "carol"))
	waitCount(t, alice, 2, 5*time.Second)

	// Freeze carol's page: its timers stop, so its heartbeats stop, and
	// it sends no beacon.
	err := chromedp.Do(carol, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.SetWebLifecycleState,
			page.SetWebLifecycleStateParams{State: page.SetWebLifecycleStateStateFrozen})
		return err
	}))
	if err != nil {
		t.Fatalf("freezing carol's tab: %v", err)
	}
	deadline := viewerDeadline(t, srv, room, "carol")
	t.Logf("carol's tab frozen; her deadline is in %v", time.Until(deadline).Round(time.Millisecond))

	waitCount(t, alice, 1, time.Until(deadline)+2*time.Second)
	if early := time.Until(deadline); early > 50*time.Millisecond {
		t.Fatalf("carol left %v before her deadline", early)
	}
	t.Logf("carol expired %v after her deadline", -time.Until(deadline).Round(time.Millisecond))
}

// viewerDeadline reads user's deadline in room from the server.
func viewerDeadline(t *testing.T, srv *httptest.Server, room, user string) time.Time {
	t.Helper()
	resp, err := http.Get(srv.URL + "/presence/viewers?room=" + url.QueryEscape(room))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Viewers []struct {
			User     string
			Deadline time.Time
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, v := range body.Viewers {
		if v.User == user {
			return v.Deadline
		}
	}
	t.Fatalf("%s is not in %s", user, room)
	return time.Time{}
}

func TestScreenshot(t *testing.T) {
	store := memstore.New()
	srv := startApp(t, store, 30*time.Second)
	room := "Cup final"
	// Viewers from elsewhere fill the face pile beyond its four places.
	ctx := context.Background()
	for i, name := range []string{"Grace Hopper", "Alan Turing", "Ada Lovelace", "Ken Thompson", "Barbara Liskov"} {
		meta := fmt.Sprintf(`{"name":%q,"color":"hsl(%d 55%% 45%%)"}`, name, 40+i*60)
		if err := store.Heartbeat(ctx, presence.Beat{Room: room, UserID: fmt.Sprintf("guest-%d", i),
			Meta: []byte(meta), Now: time.Now(), Deadline: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	browser := newBrowser(t)
	me, _ := tab(t, browser, srv.URL+"/?room="+url.QueryEscape(room))
	waitCount(t, me, 6, 5*time.Second)

	more, err := chromedp.Run(me, chromedp.Evaluate[string]("document.querySelector('.face-more')?.textContent ?? ''"))
	if err != nil || more != "+3" {
		t.Fatalf("face pile overflow = %q, %v; want +3", more, err)
	}
	png, err := chromedp.Run(me, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "viewers.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// redisClient returns a client for REDIS_URL or 127.0.0.1:6379. It skips
// the test, or fails it under PRESENCE_REQUIRE_REDIS=1, when Redis does not
// answer.
func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_URL")
	if addr == "" {
		addr = "redis://127.0.0.1:6379"
	}
	opt, err := redis.ParseURL(addr)
	if err != nil {
		t.Fatalf("REDIS_URL: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		if os.Getenv("PRESENCE_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis at %s: %v (PRESENCE_REQUIRE_REDIS=1)", opt.Addr, err)
		}
		t.Skipf("skipping Redis browser test: no Redis at %s (%v); set REDIS_URL", opt.Addr, err)
	}
	return c
}

func TestTwoServersOnRedis(t *testing.T) {
	// Two instances, each with its own connection, as two processes.
	srv1 := startApp(t, redisstore.New(redisClient(t)), 30*time.Second)
	srv2 := startApp(t, redisstore.New(redisClient(t)), 30*time.Second)
	browser := newBrowser(t)
	room := fmt.Sprintf("e2e-%d", time.Now().UnixNano())

	dora, _ := tab(t, browser, pageURL(srv1, room, "dora"))
	waitCount(t, dora, 1, 5*time.Second)
	eve, closeEve := tab(t, browser, pageURL(srv2, room, "eve"))
	waitCount(t, eve, 2, 5*time.Second)
	waitCount(t, dora, 2, 5*time.Second)

	closeEve()
	waitCount(t, dora, 1, 2*time.Second)
}

func TestHeartbeatsBackOff(t *testing.T) {
	const ttl = 3 * time.Second // the client beats every second when well
	p := presence.New(memstore.New())
	appHandler := app.New(p, ttl)
	var (
		mu    sync.Mutex
		down  bool
		beats []time.Time // heartbeats received while down
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/presence/heartbeat" {
			mu.Lock()
			isDown := down
			if isDown {
				beats = append(beats, time.Now())
			}
			mu.Unlock()
			if isDown {
				http.Error(w, `{"error":"presence unavailable"}`, http.StatusServiceUnavailable)
				return
			}
		}
		appHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { p.Close() })
	browser := newBrowser(t)

	frank, _ := tab(t, browser, pageURL(srv, "backoff", "frank"))
	waitCount(t, frank, 1, 5*time.Second)
	mu.Lock()
	down = true
	mu.Unlock()
	time.Sleep(6 * time.Second) // real time: the browser's timers run on it
	mu.Lock()
	down = false
	n := len(beats)
	mu.Unlock()
	t.Logf("%d heartbeats in 6s of failures", n)
	// Well, the client would have beaten about six times; backing off
	// from 1-2s, doubling, it tries at most four times.
	if n < 2 || n > 4 {
		t.Fatalf("%d heartbeats in 6s of failures, want 2 to 4: %v", n, beats)
	}
	// The badge shows the failure; frank expired meanwhile, and his tab
	// brings him back by itself.
	state, err := chromedp.Run(frank, chromedp.Evaluate[string]("document.getElementById('badge').dataset.state"))
	if err != nil || state != "offline" {
		t.Fatalf("badge state %q, %v; want offline", state, err)
	}
	run, stop := context.WithTimeout(frank, 20*time.Second)
	defer stop()
	if _, err := chromedp.Run(run, chromedp.Poll[bool]("document.getElementById('count').textContent === '1' && document.getElementById('badge').dataset.state === 'live'",
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("no recovery: %v", err)
	}
}
