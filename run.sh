#!/usr/bin/env bash
# The README's main command: set up and open the Dash app on the built-in demo patient
# (or on a patient folder / data root given as argument) at http://127.0.0.1:8050/.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/rtplan-assist serve "$@"
