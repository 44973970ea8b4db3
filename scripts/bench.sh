#!/usr/bin/env bash
# make bench: the figures in docs/benchmarks.md. Reported, never asserted.
#   BENCH_RSS_DURATION=2m  how long the resident-memory run lasts
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(./scripts/pg-ensure.sh)"

echo "== scrape ingest, one core: parse + append per scrape"
GOMAXPROCS=1 go test -run '^$' -bench 'ScrapeIngest' -benchtime 3s -benchmem ./collector/

echo "== scrape ingest, one core: the real scrape manager, samples per CPU-second"
VIGIL_BENCH_E2E=1 GOMAXPROCS=1 go test -count=1 -run 'TestScrapeE2EThroughput' -v ./collector/ | grep -E 'samples|ok'

echo "== rule group evaluation: 1,000 rules over 10k series, vigil's manager vs Prometheus's group"
go test -run '^$' -bench 'RuleGroupEval' -benchtime 10x -count 3 ./rules/

echo "== host and database collection cost per interval"
go test -run '^$' -bench 'BenchmarkUpdate' -benchtime 3s ./collector/host/ ./collector/postgres/

echo "== logs, one core: tail to rotated file, to Loki"
GOMAXPROCS=1 go test -run '^$' -bench 'Tail' ./collector/logs/

echo "== live heap of the scrape-to-TSDB path at 2k, 20k, 100k series"
VIGIL_BENCH_HEAP=1 go test -count=1 -run 'TestHeapPerSeries' -v ./bench/rss/ | grep -E 'live heap|ok'

echo "== resident memory: 2,000 series every 5 s, seed rules"
make build >/dev/null
go run ./bench/rss -vigil bin/vigil -duration "${BENCH_RSS_DURATION:-2m}"
