#!/usr/bin/env bash
# pg-ensure.sh: make sure a PostgreSQL for the tests answers at
# $VIGIL_TEST_PG_DSN (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable,
# trust authentication).
#
#   eval "$(scripts/pg-ensure.sh)"
#
# When that server answers, it prints nothing. Otherwise it starts a throwaway
# cluster in $VIGIL_PG_DIR (default /tmp/vigil-pg) on 127.0.0.1, port 5432 if
# free else 55432, creates the database `test`, and prints
#   export VIGIL_TEST_PG_DSN='postgres://postgres@127.0.0.1:PORT/test?sslmode=disable'
# for the caller to eval. When the server binaries are missing and we are root,
# it first installs Debian's `postgresql` package (apt-get update && apt-get
# install -y postgresql), which also creates the postgres user.
#
# Idempotent: a cluster it started before is reused (started again if it
# stopped). Messages go to stderr; stdout carries only the export line.
# Stop the throwaway cluster with:
#   runuser -u postgres -- /usr/lib/postgresql/*/bin/pg_ctl -D /tmp/vigil-pg/data stop
set -euo pipefail

DEFAULT_DSN='postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
DSN=${VIGIL_TEST_PG_DSN:-$DEFAULT_DSN}
BASE=${VIGIL_PG_DIR:-/tmp/vigil-pg}

say() { echo "pg-ensure: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# bindir prints the newest server binary directory, or nothing.
bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
			echo "$d"
			return
		fi
	done
}

# tool prints the path of a client program: on PATH, or next to the server.
tool() {
	if command -v "$1" >/dev/null 2>&1; then
		command -v "$1"
		return
	fi
	local b
	b=$(bindir)
	if [ -n "$b" ] && [ -x "$b/$1" ]; then
		echo "$b/$1"
		return
	fi
	return 1
}

# answers DSN succeeds when the server takes the DSN and runs SELECT 1.
answers() {
	local psql ready
	if psql=$(tool psql); then
		PGCONNECT_TIMEOUT=3 "$psql" "$1" -Atqc 'SELECT 1' >/dev/null 2>&1
		return
	fi
	if ready=$(tool pg_isready); then
		"$ready" -q -t 3 -d "$1"
		return
	fi
	return 1
}

# port_busy PORT succeeds when something listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ensure_test_db PORT creates the database test on the server at PORT.
ensure_test_db() {
	local psql
	psql=$(tool psql) || die "psql not found (install postgresql-client)"
	local admin="postgres://postgres@127.0.0.1:$1/postgres?sslmode=disable"
	if [ "$(PGCONNECT_TIMEOUT=3 "$psql" "$admin" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != 1 ]; then
		PGCONNECT_TIMEOUT=3 "$psql" "$admin" -qc 'CREATE DATABASE test' >/dev/null ||
			die "could not create database test on 127.0.0.1:$1"
	fi
}

if answers "$DSN"; then
	exit 0
fi

# The default server may be up without the database test: create it.
if [ "$DSN" = "$DEFAULT_DSN" ] && answers 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'; then
	ensure_test_db 5432
	answers "$DSN" && exit 0
fi

if [ -z "$(bindir)" ]; then
	[ "$(id -u)" = 0 ] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin and not root: install them with: sudo apt-get install -y postgresql"
	command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin and no apt-get: install PostgreSQL 13 or later"
	say "PostgreSQL server binaries not found: installing Debian's postgresql package (apt-get update && apt-get install -y postgresql); it creates the postgres user and may start a 'main' cluster on 5432"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || die "apt-get install postgresql failed"
	[ -n "$(bindir)" ] || die "postgresql is installed but no server binaries are in /usr/lib/postgresql/*/bin"
	# The package's own cluster may be what the DSN wants.
	if answers "$DSN"; then
		exit 0
	fi
	if [ "$DSN" = "$DEFAULT_DSN" ] && answers 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'; then
		ensure_test_db 5432
		answers "$DSN" && exit 0
	fi
fi
BIN=$(bindir)

RUNAS=()
if [ "$(id -u)" = 0 ]; then
	# PostgreSQL refuses to run as root.
	id postgres >/dev/null 2>&1 || die "running as root needs the postgres user (apt-get install -y postgresql creates it)"
	RUNAS=(runuser -u postgres --)
fi

say "no PostgreSQL answers at the test DSN; using a throwaway cluster in $BASE"
mkdir -p "$BASE"
if [ ${#RUNAS[@]} -gt 0 ]; then
	chown postgres: "$BASE"
fi
chmod 700 "$BASE"

if [ ! -f "$BASE/data/PG_VERSION" ]; then
	"${RUNAS[@]}" "$BIN/initdb" -D "$BASE/data" -A trust -U postgres -E UTF8 --no-instructions >"$BASE/initdb.log" 2>&1 ||
		die "initdb failed; see $BASE/initdb.log: $(tail -n 5 "$BASE/initdb.log")"
fi

PORT=""
if "${RUNAS[@]}" "$BIN/pg_ctl" -D "$BASE/data" status >/dev/null 2>&1; then
	PORT=$(cat "$BASE/port" 2>/dev/null || true)
	[ -n "$PORT" ] || die "a cluster runs in $BASE/data but $BASE/port is missing; stop it: ${RUNAS[*]} $BIN/pg_ctl -D $BASE/data stop"
else
	for p in 5432 55432; do
		if ! port_busy "$p"; then
			PORT=$p
			break
		fi
	done
	[ -n "$PORT" ] || die "ports 5432 and 55432 on 127.0.0.1 are both taken by something that does not answer the test DSN; set VIGIL_TEST_PG_DSN to a PostgreSQL with trust authentication"
	"${RUNAS[@]}" "$BIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 30 \
		-o "-p $PORT -k $BASE -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 ||
		die "could not start PostgreSQL on 127.0.0.1:$PORT; see $BASE/server.log: $(tail -n 5 "$BASE/server.log" 2>/dev/null)"
	echo "$PORT" >"$BASE/port"
fi

ensure_test_db "$PORT"
NEW_DSN="postgres://postgres@127.0.0.1:$PORT/test?sslmode=disable"
answers "$NEW_DSN" || die "the throwaway cluster on 127.0.0.1:$PORT does not answer $NEW_DSN; see $BASE/server.log"
echo "export VIGIL_TEST_PG_DSN='$NEW_DSN'"
