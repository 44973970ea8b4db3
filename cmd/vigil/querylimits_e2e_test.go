package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rssBytes reads the resident set size of process pid from
// /proc/<pid>/status.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// hostileQuery is one request that, without the query block's bounds, takes
// vigil's memory or CPU for itself.
type hostileQuery struct {
	name string
	do   func(base string) (*http.Response, error)
}

func hostileQueries() []hostileQuery {
	form := func(path string, v url.Values) func(string) (*http.Response, error) {
		return func(base string) (*http.Response, error) {
			return http.PostForm(base+path, v)
		}
	}
	ones := func(n int) string { return "1" + strings.Repeat("+1", n) }
	return []hostileQuery{
		{"subquery of 86 million steps", func(base string) (*http.Response, error) {
			return http.Get(base + "/api/v1/query?query=" + url.QueryEscape("sum_over_time(vector(1)[1d:1ms])"))
		}},
		{"90 KB of 1+1+...", form("/api/v1/query", url.Values{"query": {ones(45_000)}})},
		{"parse_query of 600 KB", form("/api/v1/parse_query", url.Values{"query": {ones(300_000)}})},
		{"format_query of 100,000 operators", form("/api/v1/format_query", url.Values{"query": {ones(100_000)}})},
		{"100 MB multipart form", func(base string) (*http.Response, error) {
			// Streamed, so the test does not hold 100 MB either.
			pr, pw := io.Pipe()
			mw := multipart.NewWriter(pw)
			go func() {
				_ = mw.WriteField("query", "up")
				// vigil may answer 413 and the client close the pipe
				// before the file part starts: then there is no fw.
				fw, err := mw.CreateFormFile("junk", "junk.bin")
				if err != nil {
					pw.CloseWithError(err)
					return
				}
				chunk := make([]byte, 1<<20)
				for range 100 {
					if _, err := fw.Write(chunk); err != nil {
						pw.CloseWithError(err)
						return
					}
				}
				pw.CloseWithError(mw.Close())
			}()
			return http.Post(base+"/api/v1/query", mw.FormDataContentType(), pr)
		}},
	}
}

// TestHostileQueriesLeaveAlertingAlone starts vigil with a fast rule and a
// webhook receiver and fires the queries of issue 13 item 3 at it from a
// few clients at once: each is refused or cut off with an error, vigil's
// resident memory stays under 256 MB, and the alert that starts in the
// middle of it all is delivered in its usual time.
func TestHostileQueriesLeaveAlertingAlone(t *testing.T) {
	app := newGaugeApp(t, 10)
	hooks := newHookServer(t)
	dir := t.TempDir()
	addr := freePort(t)
	cfg := writeConfig(t, dir, escalationConfig(dir, addr, app, hooks, "1h", ""))
	v := startVigil(t, cfg, addr)
	base := v.url("")
	pid := v.cmd.Process.Pid

	var (
		stop     atomic.Bool
		maxRSS   atomic.Int64
		mtx      sync.Mutex
		answered = map[string][]string{} // name -> "status errorType: error"
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if rss := rssBytes(t, pid); rss > maxRSS.Load() {
				maxRSS.Store(rss)
			}
			if maxRSS.Load() > 256<<20 {
				// Failed already: spare the machine the rest.
				stop.Store(true)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	const clients = 4
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qs := hostileQueries()
			for j := i; !stop.Load(); j++ {
				q := qs[j%len(qs)]
				resp, err := q.do(base)
				got := ""
				if err != nil {
					// The multipart upload may see its connection closed
					// before it reads the 413: refused all the same.
					got = "refused: " + err.Error()
				} else {
					var env struct {
						Status, ErrorType, Error string
					}
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
					_ = json.Unmarshal(body, &env)
					got = fmt.Sprintf("%d %s: %s", resp.StatusCode, env.ErrorType, env.Error)
					if resp.StatusCode < 400 || env.Status != "error" {
						got = "ANSWERED " + got
					}
				}
				mtx.Lock()
				answered[q.name] = append(answered[q.name], got)
				mtx.Unlock()
			}
		}()
	}

	// The barrage runs; then the app's CPU crosses the rule's threshold.
	time.Sleep(3 * time.Second)
	crossed := time.Now()
	app.cpu.Store(95)
	require.Eventually(t, func() bool { return len(hooks.accepted("/l1")) > 0 }, 30*time.Second, 50*time.Millisecond,
		"the alert was not delivered while hostile queries ran")
	took := hooks.accepted("/l1")[0].at.Sub(crossed)
	time.Sleep(2 * time.Second)
	stop.Store(true)
	wg.Wait()

	t.Logf("alert delivered %s after the threshold was crossed; vigil's largest RSS %d MB", took.Round(10*time.Millisecond), maxRSS.Load()>>20)
	// The rule's for (1s) + a scrape interval (1s) + an evaluation (1s),
	// with room for a machine shared by many tests.
	require.Less(t, took, 10*time.Second, "the alert was late")
	require.Less(t, maxRSS.Load(), int64(256<<20), "vigil's resident memory passed 256 MB")
	for _, q := range hostileQueries() {
		got := answered[q.name]
		require.NotEmpty(t, got, "%s was never sent", q.name)
		for _, a := range got {
			require.NotContains(t, a, "ANSWERED", q.name)
		}
		t.Logf("%s (%d times): %s", q.name, len(got), got[0])
	}
}
