#!/usr/bin/env bash
# Create .venv and install rtplan-assist into it (editable). Idempotent.
#   scripts/setup.sh          the app and CLI
#   scripts/setup.sh test     plus the test tools (and Debian's Chromium for browser tests,
#                             PostgreSQL for the decision-record tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# (PYTHONWARNINGS: setuptools' generic notice on editable installs is not the user's concern)
echo "rtplan-assist: installing the Python packages into .venv (pip; a minute or two the first time, seconds afterwards) ..."
.venv/bin/python -m pip install --quiet --upgrade pip
if [ "${1:-}" = "test" ]; then
  # Browser tests drive Debian's Chromium via chromedriver; PDF checks use poppler-utils;
  # WeasyPrint (PDF reports) needs Pango. Test tools must never download a browser.
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
  command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
  ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || need+=(libpango-1.0-0 libpangoft2-1.0-0)
  # decision-record tests start a throwaway PostgreSQL server (initdb/pg_ctl, Unix socket)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
  # the kernels' ahead-of-time build (numba.pycc) compiles a small C file
  command -v cc >/dev/null 2>&1 || need+=(gcc)
  [ -f "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
    || need+=(python3-dev)
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install --quiet -e ".[test,dask]"
else
  PYTHONWARNINGS="ignore::UserWarning" .venv/bin/python -m pip install --quiet -e .
fi
# Compile the kernels once, with progress, so that neither the first `serve`, the first
# browser visit nor the first `dvh` waits on a compiler in silence: Numba's JIT cache and the
# ahead-of-time build (kernels/_jit.py; numba.pycc needs a C compiler, which `test` installs).
# Skipped while the kernels' sources (content and mtime: Numba's cache key) and Numba are
# unchanged since the last compilation and the build is there.
stamp=".venv/.kernels-compiled"
want="$(cat kernels/*.py | sha256sum | cut -c1-16) $(stat -c %Y kernels/*.py | sha256sum | cut -c1-8) $(.venv/bin/python -c 'import numba; print(numba.__version__)')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || [ ! -f kernels/__pycache__/rtplan_assist_kernels_aot.json ]; then
  .venv/bin/python -m rtplan_assist.precompile
  echo "$want" > "$stamp"
fi
# Byte-compile the package: where PYTHONDONTWRITEBYTECODE is set (containers, some CI and
# this project's shared machine) Python never writes .pyc files itself, and every command
# then recompiles ~50 modules from source (0.05-0.07 s of each `dvh`/`evaluate` process).
.venv/bin/python -m compileall -q rtplan_assist kernels app constraints >/dev/null
