// Command rss measures vigil's resident memory on the sidecar job of the
// performance targets: one target of 2,000 series (-series) scraped every
// 5 s with the seed's rules loaded. It serves the target itself on
// 127.0.0.1, starts the vigil binary it is given, and prints VmRSS over
// time. heap_test.go measures the live heap of the same path in-process.
//
//	go run ./bench/rss -vigil bin/vigil -duration 2m
//	go run ./bench/rss -vigil bin/vigil -series 100000 -duration 60s
//
// With -remote-write it also sends every sample by remote_write, to a
// receiver of its own that discards them or to -receiver (a Prometheus with
// --web.enable-remote-write-receiver), and prints the samples vigil shipped
// per CPU-second of vigil over the run after the first reading:
//
//	go run ./bench/rss -vigil bin/vigil -series 10000 -remote-write \
//	    -receiver http://127.0.0.1:9099/api/v1/write -duration 2m
//
// -metric and -target let Prometheus scrape the very same target:
//
//	go run ./bench/rss -vigil bin/vigil -series 100000 -metric http_requests_total -target 127.0.0.1:19100
//
// -errors makes that share of the target's series answer code="500", so
// the app's error_rate has 5xx series to select (default: none, every
// series is code="200"). Every run also prints vigil's CPU seconds and the
// bytes it allocated per second (go_memstats_alloc_bytes_total from its
// /metrics) over the run after the first reading.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-sh/vigil/bench/internal/proc"
)

func main() {
	var (
		bin      = flag.String("vigil", "bin/vigil", "vigil binary")
		series   = flag.Int("series", 2000, "series on the target")
		interval = flag.Duration("interval", 5*time.Second, "scrape and evaluation interval")
		duration = flag.Duration("duration", 2*time.Minute, "how long to run before the reading")
		every    = flag.Duration("every", 15*time.Second, "how often to print a reading")
		remote   = flag.Bool("remote-write", false, "also send every sample by remote_write to a receiver on 127.0.0.1 that discards them")
		queue    = flag.String("queue-config", "", "remote_write queue_config as YAML flow, e.g. '{capacity: 2500}'")
		receiver = flag.String("receiver", "", "with -remote-write: the remote-write URL to send to instead of a receiver that discards")
		retain   = flag.String("retention", "", "storage.retention, e.g. 6h (default: vigil's)")
		metric   = flag.String("metric", "bench_requests_total", "name of the target's series (http_requests_total is read by the app's signal rules)")
		targetAt = flag.String("target", "127.0.0.1:0", "address the target listens on (fix it to scrape the same target from Prometheus too)")
		errShare = flag.Float64("errors", 0, "share of the target's series labelled code=\"500\" (0 to 1)")
	)
	flag.Parse()

	target, err := net.Listen("tcp", *targetAt)
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(target, exposition(*series, *metric, *errShare)) }()

	dir, err := os.MkdirTemp("", "vigil-rss")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	addr := proc.FreeAddr()

	// The built-in default config already holds the seed's rules; this file
	// adds the app target and the interval.
	cfg := fmt.Sprintf(`service: bench
environment: development
data_dir: %s
server: {listen: "%s"}
logging: {level: warn}
metrics: {interval: %s}
collectors:
  app: {targets: ["%s"], labels: {app: app}}
rule_files: ["%s"]
`, filepath.Join(dir, "data"), addr, interval, target.Addr(), filepath.Join(dir, "seed-rules.yml"))
	if *retain != "" {
		cfg += fmt.Sprintf("storage: {retention: %s}\n", *retain)
	}
	if *remote {
		cfg += remoteWrite(*queue, *receiver)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-rules.yml"), []byte(seedRules), 0o644); err != nil {
		log.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
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

	start := time.Now()
	fmt.Printf("series=%d interval=%s pid=%d target=%s vigil=%s\n", *series, *interval, cmd.Process.Pid, target.Addr(), addr)
	var (
		peak                float64
		cpu0, sent0, alloc0 float64
		windowOpen          bool
		window0             time.Time
	)
	for time.Since(start) < *duration {
		time.Sleep(*every)
		m := proc.MemoryOf(cmd.Process.Pid)
		peak = max(peak, m.HWM)
		line := fmt.Sprintf("t=%-5s VmRSS=%.1f MB (RssAnon %.1f MB) VmHWM=%.1f MB", time.Since(start).Round(time.Second), m.RSS, m.Anon, m.HWM)
		cpu, alloc := proc.CPUSeconds(cmd.Process.Pid), allocBytes(addr)
		line += fmt.Sprintf(" cpu=%.2fs alloc=%.0f MB", cpu, alloc/1e6)
		var sent float64
		if *remote {
			sent = samplesSent(addr)
			line += fmt.Sprintf(" sent=%.0f", sent)
		}
		if !windowOpen {
			// The window starts after the first reading: the series
			// exist, the rules run and the queue runs.
			cpu0, sent0, alloc0, window0, windowOpen = cpu, sent, alloc, time.Now(), true
		}
		fmt.Println(line)
	}
	m := proc.MemoryOf(cmd.Process.Pid)
	fmt.Printf("RESULT after %s: VmRSS=%.1f MB (RssAnon %.1f MB, peak VmHWM=%.1f MB) CPU=%.1f s\n", duration, m.RSS, m.Anon, max(peak, m.HWM), proc.CPUSeconds(cmd.Process.Pid))
	if windowOpen {
		secs := time.Since(window0).Seconds()
		cpu, alloc := proc.CPUSeconds(cmd.Process.Pid)-cpu0, allocBytes(addr)-alloc0
		fmt.Printf("RESULT window of %.0f s after the first reading: vigil CPU %.1f s (%.3f cores), allocated %.0f MB (%.1f MB/s)\n",
			secs, cpu, cpu/secs, alloc/1e6, alloc/1e6/secs)
	}
	if *remote && windowOpen {
		cpu, sent := proc.CPUSeconds(cmd.Process.Pid)-cpu0, samplesSent(addr)-sent0
		fmt.Printf("RESULT remote write: %.0f samples shipped on %.2f CPU-s of vigil (user+system): %.0f samples per CPU-second\n",
			sent, cpu, sent/cpu)
	}
}

// allocBytes is vigil's go_memstats_alloc_bytes_total from its /metrics.
func allocBytes(addr string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "go_memstats_alloc_bytes_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				log.Fatal(err)
			}
			return f
		}
	}
	log.Fatalf("no go_memstats_alloc_bytes_total in %s/metrics (%v)", addr, s.Err())
	return 0
}

// samplesSent is vigil's prometheus_remote_storage_samples_total, summed
// over its queues, as /ready shows it (samples_sent).
func samplesSent(addr string) float64 {
	resp, err := http.Get("http://" + addr + "/ready")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RemoteWrite []struct {
			SamplesSent    float64 `json:"samples_sent"`
			SamplesRetried float64 `json:"samples_retried"`
		} `json:"remote_write"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		log.Fatal(err)
	}
	var n float64
	for _, q := range body.RemoteWrite {
		n += q.SamplesSent - q.SamplesRetried
	}
	return n
}

// remoteWrite returns the config that sends to url, or, without one, starts
// a remote-write receiver that reads and discards each request and sends to
// it.
func remoteWrite(queue, url string) string {
	if url == "" {
		rw := proc.Listen()
		go func() {
			_ = http.Serve(rw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
			}))
		}()
		url = "http://" + rw.Addr().String() + "/api/v1/write"
	}
	cfg := fmt.Sprintf(`global:
  external_labels: {pod: bench-0}
remote_write:
  - url: %s
`, url)
	if queue != "" {
		cfg += "    queue_config: " + queue + "\n"
	}
	return cfg
}

// exposition serves n counter series whose values move a little every
// scrape; the share errShare of them (every series whose index modulo 1,000
// is below errShare*1,000) is code="500", the others code="200".
func exposition(n int, name string, errShare float64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		bw := bufio.NewWriterSize(w, 64<<10)
		fmt.Fprintf(bw, "# TYPE %s counter\n", name)
		for i := 0; i < n; i++ {
			code := 200
			if float64(i%1000) < errShare*1000 {
				code = 500
			}
			fmt.Fprintf(bw, "%s{handler=\"/api/h%d\",code=\"%d\"} %d\n", name, i, code, 1000+i+rand.IntN(50))
		}
		_ = bw.Flush()
	})
}

// seedRules are the seed's application rules as a rule file, so the run has
// the same rules as the built-in default.
const seedRules = `alerts:
  rules:
    - {name: high_cpu, condition: cpu_usage > 80, duration: 5m, severity: critical, labels: {app: app}}
    - {name: high_memory, condition: memory_usage > 90, duration: 5m, severity: critical, labels: {app: app}}
    - {name: high_error_rate, condition: error_rate > 5, duration: 5m, severity: critical, labels: {app: app}}
    - {name: app_down, condition: up == 0, duration: 1m, severity: critical, labels: {app: app}}
    - {name: instance_down, condition: up == 0, duration: 1m, severity: critical, labels: {app: infrastructure}}
    - {name: high_disk_usage, condition: disk_usage > 85, duration: 5m, severity: warning, labels: {app: infrastructure}}
    - {name: high_network_usage, condition: network_usage > 80, duration: 5m, severity: warning, labels: {app: infrastructure}}
    - {name: database_down, condition: up == 0, duration: 1m, severity: critical, labels: {app: database}}
    - {name: high_connections, condition: connections > 100, duration: 5m, severity: warning, labels: {app: database}}
    - {name: slow_queries, condition: query_duration > 1s, duration: 5m, severity: warning, labels: {app: database}}
`
