#!/usr/bin/env bash
# Headless Chromium for the report screenshot test (tests/test_report.py), from Debian's
# packages when it is missing and this machine can install it (root + apt-get). Never fails
# the build: without Chromium that one test is skipped and says why.
set -u
for name in chromium chromium-browser google-chrome; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
log=/tmp/whatif-chromium-install.log
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Chromium from Debian's packages (for the report screenshot test; log: $log)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >"$log" 2>&1 \
    || { apt-get update >>"$log" 2>&1 && apt-get install -y --no-install-recommends chromium >>"$log" 2>&1; } \
    || echo "could not install Chromium (see $log): the screenshot test will be skipped"
else
  echo "Chromium is missing and cannot be installed here (needs root and apt-get): the screenshot test will be skipped"
fi
exit 0
