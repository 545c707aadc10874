#!/usr/bin/env bash
# The test command of the README (and of CI): set up, then run the whole suite,
# browser tests included (headless Debian Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
set +e
.venv/bin/python -m pytest --headless -q "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 1
fi
exit "$code"
