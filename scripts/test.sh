#!/usr/bin/env bash
# make test: vet and every test. It first makes sure what the tests need is
# here (a PostgreSQL server; its binaries for throwaway clusters; Chromium for
# the operator page's browser test) and says
# plainly what is missing when it cannot provide it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v go >/dev/null 2>&1 || { echo "make test: Go is not installed (need go 1.26 on PATH)" >&2; exit 1; }

echo "== PostgreSQL for the database collector tests"
# Prints an export line when it had to start a throwaway server.
eval "$(./scripts/pg-ensure.sh)"
echo "using ${VIGIL_TEST_PG_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"

echo "== Chromium for the browser test"
if [ "${VIGIL_SKIP_BROWSER:-}" = 1 ]; then
	echo "skipped (VIGIL_SKIP_BROWSER=1)"
else
	eval "$(./scripts/chromium-ensure.sh)"
	echo "using $VIGIL_CHROMIUM"
fi

echo "== go vet"
go vet ./...

echo "== go test"
# -p 2: the machine has two cores; the end-to-end tests start real binaries.
go test -count=1 -p 2 -timeout 12m ./...

echo "== the README's commands on a fresh clone"
./scripts/readme-check.sh
