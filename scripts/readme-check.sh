#!/usr/bin/env bash
# readme-check: run the README's commands as a new user would. It clones
# this checkout's HEAD into a temporary directory (a clone has no ../shared
# and no build output) and runs every line of the README's ```sh blocks in
# order: `make run` in the background until /ready answers, the rest in the
# foreground, each of which must succeed (curl must get a 2xx answer).
# `make test` and `make demo` are not run: this script runs inside
# `make test`, which runs the demo too. ```text blocks are templates with
# values of the reader's own and are not run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)


# The README names 127.0.0.1:9090; it must be free.
if (exec 3<>/dev/tcp/127.0.0.1/9090) 2>/dev/null; then
	echo "readme-check: 127.0.0.1:9090 is in use; the README's commands need it free" >&2
	exit 1
fi

tmp=$(mktemp -d)
run_pid=""
cleanup() {
	if [ -n "$run_pid" ]; then
		# make run was started in its own process group: stop make and vigil.
		kill -TERM -- "-$run_pid" 2>/dev/null || true
		wait "$run_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

git clone -q "$root" "$tmp/vigil"
cd "$tmp/vigil"

# curl as the README writes it, but failing on an HTTP error.
curl() { command curl -fsS --max-time 10 "$@"; }

# The README's sh blocks, one command a line; a line ending in \ continues.
mapfile -t commands < <(awk '
	/^```sh$/ { in_block = 1; next }
	/^```/    { in_block = 0; next }
	in_block && !/^[[:space:]]*(#|$)/ {
		if (sub(/\\$/, "")) { cont = cont $0; next }
		print cont $0; cont = ""
	}' README.md)
[ "${#commands[@]}" -gt 0 ] || { echo "readme-check: no commands found in README.md" >&2; exit 1; }

start=$SECONDS
for cmd in "${commands[@]}"; do
	case "$cmd" in
	"make test"* | "make demo"*)
		echo "readme-check: skip   $cmd (make test runs it)"
		;;
	"make run"*)
		if [ -n "$run_pid" ]; then
			# A second `make run` in the README replaces the first.
			kill -TERM -- "-$run_pid" 2>/dev/null || true
			wait "$run_pid" 2>/dev/null || true
			run_pid=""
		fi
		echo "readme-check: start  $cmd"
		setsid bash -c "$cmd" >run.log 2>&1 &
		run_pid=$!
		for _ in $(seq 600); do
			if command curl -fs --max-time 2 -o /dev/null http://127.0.0.1:9090/ready; then
				break
			fi
			if ! kill -0 "$run_pid" 2>/dev/null; then
				echo "readme-check: '$cmd' exited:" >&2
				tail -20 run.log >&2
				exit 1
			fi
			sleep 0.5
		done
		command curl -fs --max-time 2 -o /dev/null http://127.0.0.1:9090/ready ||
			{ echo "readme-check: vigil never became ready; its log:" >&2; tail -20 run.log >&2; exit 1; }
		grep -q "make run: building" run.log ||
			{ echo "readme-check: make run did not say what it builds" >&2; exit 1; }
		;;
	*)
		echo "readme-check: run    $cmd"
		if ! out=$(eval "$cmd" 2>&1); then
			echo "readme-check: FAILED: $cmd" >&2
			echo "$out" | tail -20 >&2
			exit 1
		fi
		;;
	esac
done
echo "readme-check: ${#commands[@]} commands of README.md work on a fresh clone ($((SECONDS - start))s)"
