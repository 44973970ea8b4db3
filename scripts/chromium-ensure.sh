#!/usr/bin/env bash
# Makes sure a Chromium is here for the operator page's browser test
# (cmd/vigil/browser_e2e_test.go) and prints an export line naming it.
# It installs Debian's chromium package when none is found and it may
# (root, or passwordless sudo); otherwise it says what is missing and fails.
set -euo pipefail

if [ -n "${VIGIL_CHROMIUM:-}" ]; then
	[ -x "$VIGIL_CHROMIUM" ] || { echo "make test: VIGIL_CHROMIUM=$VIGIL_CHROMIUM is not an executable" >&2; exit 1; }
	echo "export VIGIL_CHROMIUM=$VIGIL_CHROMIUM"
	exit 0
fi
for name in chromium chromium-browser google-chrome; do
	if p=$(command -v "$name" 2>/dev/null); then
		echo "export VIGIL_CHROMIUM=$p"
		exit 0
	fi
done

sudo=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		sudo="sudo -n"
	else
		echo "make test: Chromium is missing and cannot be installed without root: run 'apt-get install chromium'," >&2
		echo "or set VIGIL_CHROMIUM to a Chromium binary, or VIGIL_SKIP_BROWSER=1 to skip the browser test" >&2
		exit 1
	fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "make test: Chromium is missing and this is not a Debian-like system: install Chromium and set VIGIL_CHROMIUM" >&2
	exit 1
fi
echo "installing Debian's chromium for the browser test" >&2
log=$(mktemp)
if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >"$log" 2>&1 ||
	{ $sudo apt-get update -q >>"$log" 2>&1 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >>"$log" 2>&1; }; }; then
	tail -20 "$log" >&2
	echo "make test: installing chromium with apt-get failed (see above)" >&2
	exit 1
fi
rm -f "$log"
echo "export VIGIL_CHROMIUM=$(command -v chromium)"
