#!/usr/bin/env bash
# Prometheus and promtool for the service-graph import tests (tests/unit/test_import_traces.py
# backfills series with promtool and queries a real Prometheus), from Debian's packages when
# they are missing and this machine can install them (root + apt-get). Idempotent; prints one
# line and never fails the build: without the binaries those tests are skipped and say why.
set -u
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  echo "Prometheus present: $(prometheus --version 2>&1 | head -n 1)"
  exit 0
fi
log=/tmp/whatif-prometheus-install.log
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y --no-install-recommends prometheus >"$log" 2>&1 \
    || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends prometheus >>"$log" 2>&1; }; then
    # The tests run their own server on a free port: a system service the package may
    # start is not used.
    echo "installed Prometheus from Debian's packages: $(prometheus --version 2>&1 | head -n 1) (log: $log)"
  else
    echo "could not install Prometheus (see $log): the real-Prometheus tests will be skipped"
  fi
else
  echo "Prometheus is missing and cannot be installed here (needs root and apt-get): the real-Prometheus tests will be skipped"
fi
exit 0
