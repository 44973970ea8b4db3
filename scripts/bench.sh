#!/usr/bin/env bash
# make bench: the figures in docs/benchmarks.md. Reported, never asserted.
#   BENCH_RSS_DURATION=2m  how long the resident-memory run lasts
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=-tags=slicelabels

echo "== scrape ingest (one core)"
GOMAXPROCS=1 go test -run '^$' -bench 'ScrapeIngest' -benchtime 5x -benchmem ./collector/

echo "== rule group evaluation: 1,000 rules over 10k series, vigil vs Prometheus's engine"
go test -run '^$' -bench 'RuleGroupEval' -benchtime 5x -count 3 -benchmem ./rules/

echo "== resident memory: 2,000 series every 5 s, seed rules"
make build >/dev/null
go run ./bench/rss -vigil bin/vigil -duration "${BENCH_RSS_DURATION:-2m}"
