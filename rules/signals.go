package rules

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/vigil-sh/vigil/collector/host"
	"github.com/vigil-sh/vigil/config"
)

// SignalsGroupName is the group of recording rules that derive the app's
// cpu_usage, memory_usage and error_rate from its standard metrics.
const SignalsGroupName = "vigil-app-signals"

// signalLabels are the labels the derived signals keep.
const signalLabels = "app, environment, service, job, instance"

// requestsRateRecord is the recording rule the default error_rate reads the
// app's request rate from (defaultRequestsRate).
const requestsRateRecord = "vigil:http_requests:rate1m"

// requestsRateNow selects the samples of requestsRateRecord written at the
// evaluation's own time.
const requestsRateNow = "(" + requestsRateRecord + " and timestamp(" + requestsRateRecord + ") == time())"

// Default expressions of the app's signals. %[1]s is the labels they keep;
// %[2]s the app's CPU limit in cores; %[3]s its memory limit in bytes; %[4]s
// the requests rate of this evaluation (requestsRateRecord).
const (
	// cpu_usage: percent of the app's CPU limit used, from the client
	// libraries' process_cpu_seconds_total.
	defaultCPUUsage = `100 * sum by (%[1]s) (rate(process_cpu_seconds_total[1m])) / %[2]s`
	// memory_usage: percent of the app's memory limit resident, from
	// process_resident_memory_bytes.
	defaultMemoryUsage = `100 * sum by (%[1]s) (process_resident_memory_bytes) / %[3]s`
	// vigil:http_requests:rate1m: the app's requests per second over the
	// last minute, from http_requests_total or, for series that match none
	// of those by their labels, http_server_requests_seconds_count. It is
	// error_rate's denominator and its 0-fallback, recorded by an earlier
	// rule of the same group so that the rate of every request series is
	// computed once per evaluation, not twice (the group's rules run in
	// order, each committed before the next: error_rate reads the sample
	// this evaluation just wrote). The vigil: prefix marks it as vigil's own
	// recording, one series per app, environment, service, job and
	// instance; it is recorded only while error_rate is the default one.
	defaultRequestsRate = `sum by (%[1]s) (rate(http_requests_total[1m]) or rate(http_server_requests_seconds_count[1m]))`
	// error_rate: percent of requests answered 5xx over the last minute, from
	// http_requests_total{code} or {status} (Prometheus client libraries,
	// most Go and Python middleware) or http_server_requests_seconds_count
	// {status} (Spring Boot / Micrometer). 0 when there were requests and no
	// errors; absent when there were no requests. %[4]s is the requests
	// rate recorded by this very evaluation: a sample left from an earlier
	// one (a failed evaluation, a restart) is not used. Every term sits
	// under `or`, as before: an app without HTTP metrics is not a dead rule
	// input (health.go).
	defaultErrorRate = `(
  100 * sum by (%[1]s) (
    rate(http_requests_total{code=~"5.."}[1m])
    or rate(http_requests_total{status=~"5.."}[1m])
    or rate(http_server_requests_seconds_count{status=~"5.."}[1m])
  )
  / (%[4]s > 0)
)
or 0 * (%[4]s > 0)`
)

// SignalRules returns the recording rules for the app's signals, each
// expression scoped to the app collector's app label, or nil when there is
// no app collector: cpu_usage, memory_usage, then, with the default
// error_rate, vigil:http_requests:rate1m and error_rate, which reads it.
// collectors.app.signals overrides any signal; an error_rate of the user's
// own goes without vigil:http_requests:rate1m.
func SignalRules(cfg *config.Config) ([]rulefmt.Rule, error) {
	a := cfg.Collectors.App
	if a == nil {
		return nil, nil
	}
	app := a.Labels[AppLabel]
	if app == "" {
		app = "app"
	}
	cpus := strconv.FormatFloat(cpuLimit(), 'g', -1, 64)
	mem := strconv.FormatInt(memoryLimit(int64(a.MemoryLimit)), 10)
	type signal struct {
		record, override, def string
	}
	signals := []signal{
		{"cpu_usage", a.Signals.CPUUsage, defaultCPUUsage},
		{"memory_usage", a.Signals.MemoryUsage, defaultMemoryUsage},
	}
	if a.Signals.ErrorRate == "" {
		// The default error_rate reads the requests rate recorded before it.
		signals = append(signals, signal{requestsRateRecord, "", defaultRequestsRate})
	}
	signals = append(signals, signal{"error_rate", a.Signals.ErrorRate, defaultErrorRate})
	var out []rulefmt.Rule
	for _, s := range signals {
		expr := s.override
		if expr == "" {
			expr = fmt.Sprintf(s.def, signalLabels, cpus, mem, requestsRateNow)
		}
		scoped, err := ScopeString(expr, app, "")
		if err != nil {
			return nil, fmt.Errorf("collectors.app.signals.%s: %w", s.record, err)
		}
		out = append(out, rulefmt.Rule{Record: s.record, Expr: scoped})
	}
	return out, nil
}

func signalGroups(cfg *config.Config) (*rulefmt.RuleGroups, error) {
	rs, err := SignalRules(cfg)
	if err != nil || rs == nil {
		return nil, err
	}
	return &rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{{Name: SignalsGroupName, Rules: rs}}}, nil
}

// cpuLimit is the CPU the app may use, in cores: the Go runtime's view,
// which follows the cgroup CPU limit of the container vigil shares with the
// app, else the machine's CPUs.
func cpuLimit() float64 { return float64(runtime.GOMAXPROCS(0)) }

// memoryLimit is the app's memory limit in bytes: the configured one, else
// the limit of vigil's own cgroup, v2 or v1 (right when vigil shares the
// app's container or slice), else the machine's memory.
func memoryLimit(configured int64) int64 {
	return memoryLimitIn(configured, "/proc", "/sys/fs/cgroup")
}

// memoryLimitIn is memoryLimit with /proc at procRoot and the cgroup
// hierarchy at cgroupRoot.
func memoryLimitIn(configured int64, procRoot, cgroupRoot string) int64 {
	if configured > 0 {
		return configured
	}
	// A cgroup limit is below 2^62 (see host.MemoryLimit): it fits.
	if v, ok := host.MemoryLimitIn(procRoot, cgroupRoot); ok {
		return int64(v)
	}
	if v := memTotal(filepath.Join(procRoot, "meminfo")); v > 0 {
		return v
	}
	return 1 << 30
}

// memTotal reads MemTotal from /proc/meminfo, in bytes.
func memTotal(meminfo string) int64 {
	f, err := os.Open(meminfo)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
