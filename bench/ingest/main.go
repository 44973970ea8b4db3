// Command ingest measures a gateway pair under load: it starts two vigil
// gateways sharing one PostgreSQL database, has simulated senders post
// Alertmanager API v2 alerts to both (as Prometheus posts to every
// Alertmanager of a cluster) at a fixed total rate, and reports what was
// lost, the ingest latency, incidents per second, each gateway's RSS and CPU,
// and PostgreSQL's CPU per alert. A webhook receiver in the harness counts
// Level 1 deliveries by webhook-id, so a page sent by both gateways shows as
// a duplicate.
//
//	go run ./bench/ingest -vigil bin/vigil -senders 50 -rate 1000 -duration 60s
//
// Alert n of the run belongs to group n/members (members alerts differing
// only by instance), so the run should end with rate×duration/members
// incidents of members members each.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-sh/vigil/bench/internal/proc"
)

func main() {
	var (
		bin      = flag.String("vigil", "bin/vigil", "vigil binary")
		dsn      = flag.String("dsn", envOr("VIGIL_TEST_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "PostgreSQL server (a fresh database is created on it)")
		senders  = flag.Int("senders", 50, "simulated senders")
		rate     = flag.Int("rate", 1000, "alerts per second, all senders together")
		duration = flag.Duration("duration", 60*time.Second, "how long the senders post")
		batch    = flag.Int("batch", 10, "alerts per post")
		members  = flag.Int("members", 10, "alerts per group (incident)")
		lease    = flag.Duration("lease", 15*time.Second, "storage.lease of the gateways")
		settle   = flag.Duration("settle", 2*time.Minute, "how long to wait for the incidents after the senders stop")
	)
	flag.Parse()

	db := createDatabase(*dsn)
	defer dropDatabase(*dsn, db)
	gwDSN := withDatabase(*dsn, db)

	rcv := newReceiver()
	token := randomToken()
	dir, err := os.MkdirTemp("", "vigil-ingest")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	var gws []*gateway
	for _, name := range []string{"a", "b"} {
		gws = append(gws, startGateway(*bin, dir, name, gwDSN, rcv.url, token, *lease))
	}
	defer func() {
		for _, g := range gws {
			g.stop()
		}
	}()
	for _, g := range gws {
		g.waitReady(60 * time.Second)
	}

	pgBefore := postgresCPU()
	cpuBefore := make([]float64, len(gws))
	for i, g := range gws {
		cpuBefore[i] = proc.CPUSeconds(g.cmd.Process.Pid)
	}

	total := int(float64(*rate) * duration.Seconds())
	posts := (total + *batch - 1) / *batch
	interval := time.Duration(float64(time.Second) * float64(*batch) / float64(*rate))
	var (
		next     atomic.Int64 // the next post to make
		accepted atomic.Int64
		rejected atomic.Int64
		failed   atomic.Int64
		latMtx   sync.Mutex
		lat      []time.Duration
	)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *senders * 2}}
	start := time.Now()
	var wg sync.WaitGroup
	for range *senders {
		wg.Go(func() {
			for {
				p := int(next.Add(1) - 1)
				if p >= posts {
					return
				}
				// Posts are paced as one stream shared by the senders.
				if d := time.Until(start.Add(time.Duration(p) * interval)); d > 0 {
					time.Sleep(d)
				}
				first, last := p**batch, min((p+1)**batch, total)
				body := alertsBody(first, last, *members)
				for _, g := range gws {
					t0 := time.Now()
					code, err := post(client, g.url+"/api/v2/alerts", token, body)
					d := time.Since(t0)
					latMtx.Lock()
					lat = append(lat, d)
					latMtx.Unlock()
					switch {
					case err != nil:
						failed.Add(int64(last - first))
						log.Printf("post to %s: %v", g.name, err)
					case code/100 == 2:
						accepted.Add(int64(last - first))
					default:
						rejected.Add(int64(last - first))
						log.Printf("post to %s: HTTP %d", g.name, code)
					}
				}
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)

	wantIncidents := (total + *members - 1) / *members
	var incidents, memberCount int
	deadline := time.Now().Add(*settle)
	for {
		incidents, memberCount = countIncidents(client, gws[0].url, token)
		if (incidents >= wantIncidents && memberCount >= total) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	// The gateways answer once the alerts are recorded and open the
	// incidents after: how far the incidents trail the last post.
	trail := time.Since(start) - sent
	// Level 1 deliveries of the last incidents may still be on their way.
	deliveryDeadline := time.Now().Add(30 * time.Second)
	for rcv.firing() < wantIncidents && time.Now().Before(deliveryDeadline) {
		time.Sleep(500 * time.Millisecond)
	}
	settled := time.Since(start)

	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	fmt.Printf("senders=%d rate=%d alerts/s duration=%s batch=%d members=%d lease=%s\n", *senders, *rate, *duration, *batch, *members, *lease)
	fmt.Printf("alerts: %d per gateway; posted to the pair %d, accepted %d, rejected %d, failed %d (sending took %s)\n",
		total, 2*total, accepted.Load(), rejected.Load(), failed.Load(), sent.Round(time.Millisecond))
	fmt.Printf("ingest latency per post of %d alerts: p50=%s p99=%s max=%s (target p99 < 50ms)\n", *batch, pct(0.5), pct(0.99), lat[len(lat)-1].Round(100*time.Microsecond))
	fmt.Printf("incidents: %d (want %d), members %d (want %d, lost %d); %.1f incidents/s over %s\n",
		incidents, wantIncidents, memberCount, total, max(0, total-memberCount), float64(incidents)/settled.Seconds(), settled.Round(time.Second))
	fmt.Printf("incidents complete on gateway A %s after the last post (polled each second)\n", trail.Round(time.Second))
	fmt.Printf("level-1 deliveries: %d distinct webhook-ids for %d incidents, %d duplicates after a 2xx\n", rcv.firing(), wantIncidents, rcv.duplicates())
	for i, g := range gws {
		cpu := proc.CPUSeconds(g.cmd.Process.Pid) - cpuBefore[i]
		mem := proc.MemoryOf(g.cmd.Process.Pid)
		fmt.Printf("gateway %s: RSS %.1f MB (peak %.1f MB), CPU %.1f s (%.0f%% of one core over %s)\n", g.name, mem.RSS, mem.HWM, cpu, 100*cpu/settled.Seconds(), settled.Round(time.Second))
	}
	for _, g := range gws {
		fmt.Printf("gateway %s: %s\n", g.name, storeMetrics(client, g.url, token))
	}
	pg := postgresCPU() - pgBefore
	fmt.Printf("PostgreSQL: CPU %.1f s in all, %.0f µs per alert ingested (%d by the pair)\n", pg, 1e6*pg/float64(2*total), 2*total)
}

// alertsBody is the API v2 body of alerts first..last-1, all firing.
func alertsBody(first, last, members int) []byte {
	type alert struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
		EndsAt      time.Time         `json:"endsAt"`
	}
	now := time.Now().UTC()
	out := make([]alert, 0, last-first)
	for n := first; n < last; n++ {
		out = append(out, alert{
			Labels: map[string]string{
				"alertname": "bench_alert", "severity": "critical", "environment": "production",
				"service": "svc-" + strconv.Itoa(n/members), "instance": "pod-" + strconv.Itoa(n%members),
			},
			Annotations: map[string]string{"summary": "bench"},
			StartsAt:    now,
			EndsAt:      now.Add(30 * time.Minute),
		})
	}
	b, _ := json.Marshal(out)
	return b
}

func post(c *http.Client, url, token string, body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// countIncidents returns the gateway's incidents and their members.
func countIncidents(c *http.Client, base, token string) (incidents, members int) {
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/incidents?limit=100000", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			Members []json.RawMessage `json:"members"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return 0, 0
	}
	for _, inc := range body.Data {
		members += max(1, len(inc.Members))
	}
	return len(body.Data), members
}

// storeMetrics returns the gateway's vigil_store_* counters, one line.
func storeMetrics(c *http.Client, base, token string) string {
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "vigil_store_") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// receiver counts webhook deliveries by webhook-id.
type receiver struct {
	url  string
	mtx  sync.Mutex
	seen map[string]int
	fire int
	dups int
}

func newReceiver() *receiver {
	l := proc.Listen()
	r := &receiver{url: "http://" + l.Addr().String() + "/hook", seen: map[string]int{}}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, _ := io.ReadAll(req.Body)
			var m struct {
				Kind string `json:"kind"`
			}
			_ = json.Unmarshal(body, &m)
			id := req.Header.Get("webhook-id")
			r.mtx.Lock()
			r.seen[id]++
			if r.seen[id] == 2 {
				r.dups++
			}
			if r.seen[id] == 1 && (m.Kind == "firing" || strings.Contains(string(body), `"kind":"firing"`)) {
				r.fire++
			}
			r.mtx.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
	}()
	return r
}

func (r *receiver) firing() int     { r.mtx.Lock(); defer r.mtx.Unlock(); return r.fire }
func (r *receiver) duplicates() int { r.mtx.Lock(); defer r.mtx.Unlock(); return r.dups }

type gateway struct {
	name string
	url  string
	cmd  *exec.Cmd
}

func startGateway(bin, dir, name, dsn, hook, token string, lease time.Duration) *gateway {
	l := proc.Listen()
	addr := l.Addr().String()
	_ = l.Close()
	sum := sha256.Sum256([]byte(token))
	cfg := fmt.Sprintf(`service: bench-gateway
environment: production
data_dir: %s
server: {listen: "%s"}
logging: {level: warn}
storage:
  incidents: "%s"
  lease: %s
escalation:
  # Every group is its own incident here: the run measures incidents, not
  # storm folding (escalation.storm_threshold, default 100 per alertname).
  storm_threshold: 1000000
  levels:
    - {name: support, notify: [bench]}
receivers:
  - {name: bench, webhook: {url: "%s"}}
users:
  - {name: sender, role: admin, tokens: ["sha256:%s"]}
`, filepath.Join(dir, name, "data"), addr, dsn, lease, hook, hex.EncodeToString(sum[:]))
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", file)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	return &gateway{name: name, url: "http://" + addr, cmd: cmd}
}

func (g *gateway) waitReady(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(g.url + "/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Fatalf("gateway %s not ready within %s", g.name, within)
}

func (g *gateway) stop() {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	_ = g.cmd.Wait()
}

// postgresCPU sums the CPU time of every process named postgres, children
// that ended included (cutime, cstime of the postmaster).
func postgresCPU() float64 {
	entries, _ := os.ReadDir("/proc")
	var total float64
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || !bytes.Contains(b, []byte("(postgres)")) {
			continue
		}
		total += proc.StatCPU(b, true)
	}
	return total
}

func createDatabase(dsn string) string {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		log.Fatalf("PostgreSQL at %s: %v", dsn, err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("vigil_bench_%d", time.Now().UnixNano())
	if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		log.Fatal(err)
	}
	return name
}

func dropDatabase(dsn, name string) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return
	}
	defer conn.Close(context.Background())
	_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// withDatabase returns dsn naming another database.
func withDatabase(dsn, db string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		log.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, db)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
