// Command compare measures vigil's resident memory beside Prometheus plus
// Alertmanager on the same job: one target of N series scraped every 5 s,
// the seed's alert rules and vigil's signal recording rules evaluated every
// 5 s, alerts sent to a receiver. For each series count it runs both sides
// (the order alternates between runs, one side at a time so they do not
// compete) and prints VmRSS after the soak, the ratio, and the cost of each
// added series between two counts.
//
//	go run ./bench/compare -vigil bin/vigil -series 2000,20000,100000 -duration 120s
//
// Without -prometheus and -alertmanager it builds them once into the test
// cache (~/.cache/vigil-test) from the versions vigil's go.mod pins:
// Prometheus from the module cache (its go.mod has replace directives, so
// `go install` refuses it) with -tags remove_all_sd, as the end-to-end tests
// do, and Alertmanager with `go install`.
package main

import (
	"bufio"
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

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-sh/vigil/bench/internal/proc"
	"github.com/vigil-sh/vigil/config"
	"github.com/vigil-sh/vigil/rules"
)

const (
	promVersion = "v0.316.0"
	amVersion   = "v0.31.0"
)

func main() {
	var (
		bin      = flag.String("vigil", "bin/vigil", "vigil binary")
		promBin  = flag.String("prometheus", "", "Prometheus binary (built into the test cache when empty)")
		amBin    = flag.String("alertmanager", "", "Alertmanager binary (built into the test cache when empty)")
		counts   = flag.String("series", "2000,20000,100000", "series counts to measure, comma-separated")
		interval = flag.Duration("interval", 5*time.Second, "scrape and evaluation interval")
		duration = flag.Duration("duration", 120*time.Second, "soak before each reading")
		runs     = flag.Int("runs", 1, "runs per series count; the order of the two sides alternates")
		profile  = flag.String("profile", "", "directory to save, after each soak, both sides' heap profiles, Go runtime figures and smaps_rollup in")
	)
	flag.Parse()
	profileDir = *profile
	if *promBin == "" {
		*promBin = buildPrometheus()
	}
	if *amBin == "" {
		*amBin = buildAlertmanager()
	}

	sink := proc.Listen()
	go func() {
		_ = http.Serve(sink, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}))
	}()

	type row struct {
		series     int
		vigil, pam []float64
	}
	var rows []row
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			log.Fatalf("-series: %q is not a count", s)
		}
		r := row{series: n}
		for run := range *runs {
			sides := []func(){
				func() { r.vigil = append(r.vigil, runVigil(*bin, n, *interval, *duration)) },
				func() {
					r.pam = append(r.pam, runPrometheus(*promBin, *amBin, n, *interval, *duration, sink.Addr().String()))
				},
			}
			if run%2 == 1 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			for _, side := range sides {
				side()
			}
		}
		rows = append(rows, r)
	}

	fmt.Printf("\ninterval=%s soak=%s runs=%d\n\n", *interval, *duration, *runs)
	fmt.Println("| series | vigil RSS | Prometheus + Alertmanager RSS | ratio |")
	fmt.Println("|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %d | %s | %s | %.2f× |\n", r.series, span(r.vigil), span(r.pam), mean(r.vigil)/mean(r.pam))
	}
	for i := 1; i < len(rows); i++ {
		a, b := rows[i-1], rows[i]
		d := float64(b.series - a.series)
		fmt.Printf("per added series %d → %d: vigil %.0f B, Prometheus + Alertmanager %.0f B\n", a.series, b.series,
			(mean(b.vigil)-mean(a.vigil))*(1<<20)/d, (mean(b.pam)-mean(a.pam))*(1<<20)/d)
	}
}

// runVigil runs vigil on a target of n series and returns its RSS in MB
// after the soak.
func runVigil(bin string, n int, interval, soak time.Duration) float64 {
	target := serveTarget(n)
	defer target.Close()
	dir := tempDir("vigil-compare")
	defer os.RemoveAll(dir)
	addr := proc.FreeAddr()
	cfg := vigilConfig(dir, addr, target.Addr().String(), interval)
	file := filepath.Join(dir, "vigil.yaml")
	writeFile(file, cfg)
	cmd := start(dir, "vigil", bin, "--config", file)
	defer stop(cmd)
	waitHTTP("http://"+addr+"/ready", time.Minute)
	time.Sleep(soak)
	rss := proc.MemoryOf(cmd.Process.Pid).RSS
	saveProfile(fmt.Sprintf("vigil-%d", n), "http://"+addr, "/metrics", cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "series=%d vigil: %.1f MB\n", n, rss)
	return rss
}

// runPrometheus runs Prometheus and Alertmanager on the same job and
// returns their RSS together in MB after the soak.
func runPrometheus(promBin, amBin string, n int, interval, soak time.Duration, sink string) float64 {
	target := serveTarget(n)
	defer target.Close()
	dir := tempDir("prom-compare")
	defer os.RemoveAll(dir)

	amAddr := proc.FreeAddr()
	writeFile(filepath.Join(dir, "alertmanager.yml"), fmt.Sprintf(`route: {receiver: sink, group_wait: 1s}
receivers:
  - {name: sink, webhook_configs: [{url: "http://%s/"}]}
`, sink))
	am := start(dir, "alertmanager", amBin, "--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "am"), "--web.listen-address="+amAddr, "--cluster.listen-address=")
	defer stop(am)

	// The same rules vigil evaluates: the seed's alert rules and the app's
	// signal recording rules, translated by vigil's own code.
	vcfg, err := config.Parse([]byte(vigilConfig(dir, "127.0.0.1:0", target.Addr().String(), interval)), "vigil.yaml")
	if err != nil {
		log.Fatal(err)
	}
	groups, errs := rules.SeedGroups("seed", vcfg.Alerts.Rules, nil)
	if len(errs) > 0 {
		log.Fatal(errs)
	}
	signals, err := rules.SignalRules(vcfg)
	if err != nil {
		log.Fatal(err)
	}
	groups.Groups = append(groups.Groups, rulefmt.RuleGroup{Name: "signals", Rules: signals})
	b, err := yaml.Marshal(groups)
	if err != nil {
		log.Fatal(err)
	}
	writeFile(filepath.Join(dir, "rules.yml"), string(b))

	promAddr := proc.FreeAddr()
	writeFile(filepath.Join(dir, "prometheus.yml"), fmt.Sprintf(`global: {scrape_interval: %[1]s, evaluation_interval: %[1]s}
alerting:
  alertmanagers: [{static_configs: [{targets: ["%[2]s"]}]}]
rule_files: ["%[3]s"]
scrape_configs:
  - job_name: app
    static_configs: [{targets: ["%[4]s"], labels: {app: app}}]
`, interval, amAddr, filepath.Join(dir, "rules.yml"), target.Addr()))
	prom := start(dir, "prometheus", promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr)
	defer stop(prom)
	waitHTTP("http://"+promAddr+"/-/ready", time.Minute)
	waitHTTP("http://"+amAddr+"/-/ready", time.Minute)
	time.Sleep(soak)
	p, a := proc.MemoryOf(prom.Process.Pid).RSS, proc.MemoryOf(am.Process.Pid).RSS
	saveProfile(fmt.Sprintf("prometheus-%d", n), "http://"+promAddr, "/metrics", prom.Process.Pid)
	fmt.Fprintf(os.Stderr, "series=%d Prometheus %.1f MB + Alertmanager %.1f MB\n", n, p, a)
	return p + a
}

// vigilConfig is the sidecar job: the built-in default (the seed's rules)
// with the app target and the interval.
func vigilConfig(dir, addr, target string, interval time.Duration) string {
	return fmt.Sprintf(`service: bench
environment: development
data_dir: %s
server: {listen: "%s"}
logging: {level: warn}
metrics: {interval: %s}
collectors:
  app: {targets: ["%s"], labels: {app: app}}
`, filepath.Join(dir, "data"), addr, interval, target)
}

// serveTarget serves n counter series whose values move every scrape. Their
// name is not one the signal rules read (http_requests_total), so the rules
// cost the same at every count, as in the runs issue 14 reports.
func serveTarget(n int) net.Listener {
	l := proc.Listen()
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			bw := bufio.NewWriterSize(w, 64<<10)
			fmt.Fprintln(bw, "# TYPE bench_requests_total counter")
			for i := range n {
				fmt.Fprintf(bw, "bench_requests_total{handler=\"/api/h%d\",code=\"200\"} %d\n", i, 1000+i+rand.IntN(50))
			}
			_ = bw.Flush()
		}))
	}()
	return l
}

// profileDir is -profile: where saveProfile writes, empty for nowhere.
var profileDir string

// saveProfile writes, under profileDir, the heap profile of the process
// serving base (vigil in development without users answers anyone on
// /debug/pprof/heap; Prometheus serves it open), its Go runtime figures
// and head statistics (the go_ and prometheus_tsdb_head_ lines of its metrics) and its /proc/PID/smaps_rollup, each file
// named after name. Run one bench at a time for a run's numbers to be
// meaningful. A failure is logged; the run goes on.
func saveProfile(name, base, metricsPath string, pid int) {
	if profileDir == "" {
		return
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		log.Printf("profile: %v", err)
		return
	}
	fetch := func(url, file string, keep func(line string) bool) {
		resp, err := http.Get(url)
		if err != nil {
			log.Printf("profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			log.Printf("profile %s: %s: %s", name, url, resp.Status)
			return
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			log.Printf("profile %s: %v", name, err)
			return
		}
		if keep != nil {
			var kept []string
			for line := range strings.SplitSeq(string(b), "\n") {
				if keep(line) {
					kept = append(kept, line)
				}
			}
			b = []byte(strings.Join(kept, "\n") + "\n")
		}
		writeFile(filepath.Join(profileDir, file), string(b))
	}
	fetch(base+"/debug/pprof/heap", name+".heap", nil)
	fetch(base+metricsPath, name+".go.txt", func(line string) bool {
		if strings.HasPrefix(line, "#") || strings.Contains(line, "_bucket") || strings.HasPrefix(line, "go_gc_duration") {
			return false
		}
		return strings.HasPrefix(line, "go_") || strings.HasPrefix(line, "prometheus_tsdb_head_")
	})
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		writeFile(filepath.Join(profileDir, name+".smaps_rollup"), string(b))
	}
}

func buildPrometheus() string {
	bin := filepath.Join(cacheDir(), "prometheus-"+promVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	mod, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		log.Fatalf("find the Prometheus module: %v", err)
	}
	src := tempDir("prometheus-src")
	defer os.RemoveAll(src)
	run("", nil, "cp", "-r", strings.TrimSpace(string(mod))+"/.", src)
	run("", nil, "chmod", "-R", "u+w", src)
	fmt.Fprintln(os.Stderr, "building Prometheus", promVersion, "(minutes, once)")
	run(src, []string{"GOWORK=off", "GOFLAGS=-tags=remove_all_sd"}, "go", "build", "-o", bin+".tmp", "./cmd/prometheus")
	if err := os.Rename(bin+".tmp", bin); err != nil {
		log.Fatal(err)
	}
	return bin
}

func buildAlertmanager() string {
	dir := filepath.Join(cacheDir(), "alertmanager-"+amVersion)
	bin := filepath.Join(dir, "alertmanager")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	fmt.Fprintln(os.Stderr, "building Alertmanager", amVersion, "(minutes, once)")
	run("", []string{"GOFLAGS=", "GOBIN=" + dir}, "go", "install", "github.com/prometheus/alertmanager/cmd/alertmanager@"+amVersion)
	return bin
}

func cacheDir() string {
	c, err := os.UserCacheDir()
	if err != nil {
		log.Fatal(err)
	}
	dir := filepath.Join(c, "vigil-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	return dir
}

func run(dir string, env []string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
}

func start(dir, name, bin string, args ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", name, err)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

func waitHTTP(url string, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Fatalf("%s not ready within %s", url, within)
}

func span(xs []float64) string {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	if lo == hi {
		return fmt.Sprintf("%.1f MB", lo)
	}
	return fmt.Sprintf("%.1f–%.1f MB", lo, hi)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func tempDir(prefix string) string {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		log.Fatal(err)
	}
	return d
}

func writeFile(path, body string) {
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		log.Fatal(err)
	}
}
