#!/usr/bin/env bash
# make test: vet and every test. It checks for what the tests need first and
# says plainly what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=-tags=slicelabels

command -v go >/dev/null 2>&1 || { echo "make test: Go is not installed (need go 1.26 on PATH)" >&2; exit 1; }

echo "== go vet"
go vet ./...

echo "== go test"
# -p 2: the machine has two cores; the end-to-end tests start real binaries.
go test -count=1 -p 2 -timeout 12m ./...
