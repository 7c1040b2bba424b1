package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// firefoxPrefs keep a test's Firefox off the network: no updates, telemetry, safe browsing,
// captive portal or connectivity checks, remote settings or experiments, and every address but
// loopback sent to a proxy where nothing listens (127.0.0.1:9, the discard port).
const firefoxPrefs = `user_pref("app.update.disabledForTesting", true);
user_pref("app.update.auto", false);
user_pref("app.normandy.enabled", false);
user_pref("extensions.update.enabled", false);
user_pref("extensions.getAddons.cache.enabled", false);
user_pref("extensions.blocklist.enabled", false);
user_pref("toolkit.telemetry.enabled", false);
user_pref("toolkit.telemetry.unified", false);
user_pref("toolkit.telemetry.server", "");
user_pref("datareporting.policy.dataSubmissionEnabled", false);
user_pref("datareporting.healthreport.uploadEnabled", false);
user_pref("browser.safebrowsing.malware.enabled", false);
user_pref("browser.safebrowsing.phishing.enabled", false);
user_pref("browser.safebrowsing.downloads.enabled", false);
user_pref("browser.safebrowsing.update.enabled", false);
user_pref("network.captive-portal-service.enabled", false);
user_pref("network.connectivity-service.enabled", false);
user_pref("services.settings.server", "data:,#remote-settings-off/v1");
user_pref("messaging-system.rsexperimentloader.enabled", false);
user_pref("browser.search.update", false);
user_pref("browser.shell.checkDefaultBrowser", false);
user_pref("browser.startup.page", 0);
user_pref("browser.startup.homepage_override.mstone", "ignore");
user_pref("browser.newtabpage.enabled", false);
user_pref("network.dns.disablePrefetch", true);
user_pref("network.prefetch-next", false);
user_pref("media.gmp-manager.url", "");
user_pref("network.proxy.type", 1);
user_pref("network.proxy.http", "127.0.0.1");
user_pref("network.proxy.http_port", 9);
user_pref("network.proxy.ssl", "127.0.0.1");
user_pref("network.proxy.ssl_port", 9);
user_pref("network.proxy.share_proxy_settings", true);
user_pref("network.proxy.no_proxies_on", "127.0.0.1,localhost");
user_pref("network.proxy.allow_hijacking_localhost", false);
`

// firefoxOrigin is the Origin the BiDi client's websocket handshake sends (x/net/websocket
// always sends one); Firefox refuses any origin it was not told to allow.
const firefoxOrigin = "http://127.0.0.1"

// startFirefox starts Debian's Firefox ESR headless, with a fresh profile (firefoxPrefs) and
// home directory, and drives it over WebDriver BiDi, which Firefox speaks itself (no
// geckodriver). It runs in a process group of its own, killed when the test ends and checked
// gone by its id.
func startFirefox(t *testing.T) *bidi {
	t.Helper()
	exe := needTool(t, "firefox-esr")
	profile, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxPrefs), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-headless", "-no-remote", "-profile", profile,
		"--remote-debugging-port=0", "--remote-allow-origins", firefoxOrigin)
	cmd.Env = append(os.Environ(), "HOME="+home, "MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting firefox: %v", err)
	}
	pgid := cmd.Process.Pid
	// Firefox says where it listens on stderr; the rest of what it writes is kept for a failure.
	var (
		mu   sync.Mutex
		out  strings.Builder
		addr = make(chan string, 1)
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		re := regexp.MustCompile(`WebDriver BiDi listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}()
	var b *bidi
	t.Cleanup(func() {
		if b != nil {
			_ = b.ws.Close() // Firefox is killed next: nothing to report
		}
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
			t.Errorf("killing firefox's process group %d: %v", pgid, err)
		}
		<-done
		_ = cmd.Wait() // killed: its exit status says so
		// Its content processes are in the same group; once killed they are gone for good.
		for deadline := time.Now().Add(10 * time.Second); syscall.Kill(-pgid, 0) == nil; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Errorf("firefox's process group %d still has processes after the test", pgid)
				break
			}
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("firefox's stderr:\n%s", out.String())
			mu.Unlock()
		}
	})
	var url string
	select {
	case url = <-addr:
	case <-done:
		t.Fatal("firefox exited without listening for WebDriver BiDi")
	case <-time.After(60 * time.Second):
		t.Fatal("firefox did not say where it listens for WebDriver BiDi within a minute")
	}
	ws, err := websocket.Dial(url+"/session", "", firefoxOrigin)
	if err != nil {
		t.Fatalf("connecting to firefox's WebDriver BiDi: %v", err)
	}
	b = &bidi{t: t, ws: ws}
	b.must("session.new", map[string]any{"capabilities": map[string]any{}}, nil)
	b.must("session.subscribe", map[string]any{"events": []string{"browsingContext.load"}}, nil)
	var tree struct {
		Contexts []struct {
			Context string `json:"context"`
		} `json:"contexts"`
	}
	b.must("browsingContext.getTree", map[string]any{}, &tree)
	if len(tree.Contexts) == 0 {
		var created struct {
			Context string `json:"context"`
		}
		b.must("browsingContext.create", map[string]any{"type": "tab"}, &created)
		b.context = created.Context
	} else {
		b.context = tree.Contexts[0].Context
	}
	return b
}

// bidi is a minimal WebDriver BiDi client (https://w3c.github.io/webdriver-bidi/): commands
// one at a time, each waiting for its response, and the events read meanwhile kept for
// waitEvent. It drives one browsing context (tab).
type bidi struct {
	t       *testing.T
	ws      *websocket.Conn
	next    int
	context string
	events  []bidiMessage
}

// bidiMessage is any message from the browser: a command's response ("success" or "error",
// with the command's id) or an event.
type bidiMessage struct {
	Type    string          `json:"type"`
	ID      int             `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// bidiTimeout bounds each command and each wait for an event.
const bidiTimeout = 30 * time.Second

// receive reads the next message, waiting at most until deadline.
func (b *bidi) receive(deadline time.Time) (bidiMessage, error) {
	var m bidiMessage
	if err := b.ws.SetReadDeadline(deadline); err != nil {
		return m, err
	}
	err := websocket.JSON.Receive(b.ws, &m)
	return m, err
}

// call sends a command and decodes its result into result (unless nil).
func (b *bidi) call(method string, params, result any) error {
	b.next++
	id := b.next
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	deadline := time.Now().Add(bidiTimeout)
	for {
		m, err := b.receive(deadline)
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", method, err)
		case m.Type == "event":
			b.events = append(b.events, m)
		case m.ID != id:
			// a response to nothing this client waits for
		case m.Type == "error":
			return fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		case result == nil:
			return nil
		default:
			return json.Unmarshal(m.Result, result)
		}
	}
}

// must is call, failing the test on error.
func (b *bidi) must(method string, params, result any) {
	b.t.Helper()
	if err := b.call(method, params, result); err != nil {
		b.t.Fatalf("firefox: %v", err)
	}
}

// waitEvent waits for the event method, dropping those before it.
func (b *bidi) waitEvent(method string) {
	b.t.Helper()
	deadline := time.Now().Add(bidiTimeout)
	for {
		for len(b.events) > 0 {
			m := b.events[0]
			b.events = b.events[1:]
			if m.Method == method {
				return
			}
		}
		m, err := b.receive(deadline)
		if err != nil {
			b.t.Fatalf("firefox: waiting for %s: %v", method, err)
		}
		if m.Type == "event" {
			b.events = append(b.events, m)
		}
	}
}

// eval evaluates the JavaScript expression expr in the page and decodes its value (as JSON)
// into out (unless nil). An exception fails the test.
func (b *bidi) eval(expr string, out any) {
	b.t.Helper()
	var res struct {
		Type   string `json:"type"`
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	b.must("script.evaluate", map[string]any{
		"expression":   "JSON.stringify(" + expr + ")",
		"target":       map[string]any{"context": b.context},
		"awaitPromise": true,
	}, &res)
	if res.Type != "success" {
		b.t.Fatalf("firefox: evaluating %s: %s", expr, res.ExceptionDetails.Text)
	}
	if out == nil {
		return
	}
	if res.Result.Type != "string" {
		b.t.Fatalf("firefox: evaluating %s: a %s, not a value JSON can carry", expr, res.Result.Type)
	}
	if err := json.Unmarshal([]byte(res.Result.Value), out); err != nil {
		b.t.Fatalf("firefox: evaluating %s: %v", expr, err)
	}
}

// navigate opens url and waits for the page to be loaded.
func (b *bidi) navigate(url string) {
	b.t.Helper()
	b.must("browsingContext.navigate", map[string]any{"context": b.context, "url": url, "wait": "complete"}, nil)
}

// setViewport sets the page's size in CSS pixels.
func (b *bidi) setViewport(width, height int) {
	b.t.Helper()
	b.must("browsingContext.setViewport", map[string]any{
		"context": b.context, "viewport": map[string]any{"width": width, "height": height},
	}, nil)
}

// loadAfter runs the script expr, which makes the page go elsewhere (a form submitted), and
// waits for the next page to be loaded.
func (b *bidi) loadAfter(expr string) {
	b.t.Helper()
	b.events = nil // the loads of the pages before
	b.eval(expr, nil)
	b.waitEvent("browsingContext.load")
}

// text returns the trimmed text of the first element sel selects; it fails the test if
// there is none.
func (b *bidi) text(sel string) string {
	b.t.Helper()
	var s *string
	b.eval(`(e => e && e.textContent.trim())(document.querySelector(`+jsString(sel)+`))`, &s)
	if s == nil {
		var url string
		b.eval("location.href", &url)
		b.t.Fatalf("firefox: no %s on %s", sel, url)
	}
	return *s
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s) // a string always marshals
	return string(q)
}
