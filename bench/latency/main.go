// Command latency measures the time from a scraped value crossing its
// threshold to the first delivery at a webhook receiver, less the rule's
// `for`: the figure DESIGN.md's targets table holds to one scrape interval
// plus one second (p99). It serves the app and the receiver itself on
// 127.0.0.1, starts the vigil binary it is given, and staggers the trials so
// that they fall at every phase of the scrape and evaluation cycles.
//
//	go run ./bench/latency -vigil bin/vigil -trials 20 -interval 5s
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-sh/vigil/bench/internal/proc"
)

func main() {
	var (
		bin      = flag.String("vigil", "bin/vigil", "vigil binary")
		trials   = flag.Int("trials", 20, "alerts to time")
		interval = flag.Duration("interval", 5*time.Second, "scrape interval (metrics.interval)")
		hold     = flag.Duration("for", 5*time.Second, "the rule's for")
		gap      = flag.Duration("gap", 1300*time.Millisecond, "time between two trials' crossings")
	)
	flag.Parse()

	start := time.Now()
	warmup := 2 * *interval
	crossing := make([]time.Time, *trials)
	for i := range crossing {
		crossing[i] = start.Add(warmup + time.Duration(i)*(*gap))
	}

	app := proc.Listen()
	go func() {
		_ = http.Serve(app, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			now := time.Now()
			fmt.Fprintln(w, "# TYPE cpu_usage gauge")
			for i, at := range crossing {
				v := 10
				if !now.Before(at) {
					v = 95
				}
				fmt.Fprintf(w, "cpu_usage{trial=\"%d\"} %d\n", i, v)
			}
		}))
	}()

	var (
		mtx     sync.Mutex
		arrived = map[int]time.Time{}
	)
	receiver := proc.Listen()
	go func() {
		_ = http.Serve(receiver, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			var p struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
				} `json:"alerts"`
				Incident struct {
					Kind string `json:"kind"`
				} `json:"incident"`
			}
			body, _ := io.ReadAll(r.Body)
			if json.Unmarshal(body, &p) == nil && p.Incident.Kind == "firing" && len(p.Alerts) > 0 {
				if i, err := strconv.Atoi(p.Alerts[0].Labels["trial"]); err == nil {
					mtx.Lock()
					if _, seen := arrived[i]; !seen {
						arrived[i] = at
					}
					mtx.Unlock()
				}
			}
			w.WriteHeader(http.StatusNoContent)
		}))
	}()

	dir, err := os.MkdirTemp("", "vigil-latency")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	self := proc.Listen()
	addr := self.Addr().String()
	self.Close()
	cfg := fmt.Sprintf(`service: bench
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: warn}
metrics: {interval: %s}
collectors:
  app: {targets: ["%s"], labels: {app: app}}
alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: %s, severity: critical, labels: {app: app}}
escalation:
  # One incident per trial: the default group_by (alertname, service,
  # environment, app) would put every trial's alert in one incident, and
  # only the first would be delivered as a firing.
  group_by: [alertname, app, trial]
  levels:
    - {name: support, notify: [bench]}
receivers:
  - {name: bench, webhook: {url: "http://%s/hook"}}
# Production refuses to start without users; nobody holds this hash's token.
users:
  - {name: bench, role: viewer, tokens: ["sha256:%064x"]}
`, filepath.Join(dir, "data"), addr, interval, app.Addr(), hold, receiver.Addr(), time.Now().UnixNano())
	cfgFile := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(*bin, "--config", cfgFile)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	deadline := crossing[len(crossing)-1].Add(*hold + 3**interval + 5*time.Second)
	for time.Now().Before(deadline) {
		mtx.Lock()
		n := len(arrived)
		mtx.Unlock()
		if n == *trials {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	mtx.Lock()
	defer mtx.Unlock()
	var lat []time.Duration
	for i, at := range crossing {
		got, ok := arrived[i]
		if !ok {
			fmt.Printf("trial %d: no delivery\n", i)
			continue
		}
		lat = append(lat, got.Sub(at.Add(*hold)))
	}
	if len(lat) == 0 {
		log.Fatal("no delivery arrived")
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Printf("interval=%s for=%s trials=%d delivered=%d\n", interval, hold, *trials, len(lat))
	fmt.Printf("threshold crossed → first delivery, less for: min=%s p50=%s p99=%s max=%s (target ≤ %s)\n",
		lat[0].Round(time.Millisecond), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		lat[len(lat)-1].Round(time.Millisecond), *interval+time.Second)
}
