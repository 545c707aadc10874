"""How the kernels run: ahead-of-time compiled, else Numba's JIT, from one source.

Every kernel is a plain Python function decorated with :func:`kernel` (the options Numba's
``njit`` gets). Called from Python, a kernel runs

* the **ahead-of-time build** when it has the call's signature: a C extension compiled by
  ``numba.pycc`` from these same functions (``python -m rtplan_assist.precompile``, run by
  ``scripts/setup.sh``), written with a manifest into ``kernels/__pycache__/``. Loading it
  costs milliseconds and does not import Numba; a whole ``dvh`` run saves the ~0.35 s that
  importing Numba and loading its on-disk cache take. The build is used only while its
  manifest matches the kernels' sources (a hash of every ``kernels/*.py``), this Python and
  this NumPy; anything else (a signature it lacks, an edited kernel, another interpreter)
  falls back to
* the **JIT**: Numba's ``njit(cache=True, **options)`` of the same function, created on first
  need for every kernel at once (a kernel calls others, which Numba must see as dispatchers).

Both run the same LLVM-compiled code of the same source; ``tests/test_kernels_aot.py`` checks
that their DVHs are bit-identical. The build compiles for the generic x86-64/ARM target (no
``-march=native``: the same bits as the JIT here, and a checkout that moves to another CPU
keeps working) and releases the GIL in every kernel (``compute_dvhs`` runs structures on
threads). ``parallel=True`` kernels (element-wise voxel loops) run serially in the build:
``prange`` is ``range`` there, which changes no value (no reductions).

``RTPLAN_ASSIST_KERNELS=jit`` forces the JIT (tests compare the two; the build records the
signatures the workload uses through it).

Start-up of the JIT: Numba's first compile *or cache load* in a process imports
``numba.np.arraymath``, whose import-time probe for BLAS (used only by Numba's
``np.correlate``/``np.convolve``) imports ``scipy.linalg`` (0.2 s on the 2-core machine).
No kernel uses BLAS, so the probe is answered "no BLAS" here before Numba asks
(:func:`_skip_numba_blas_probe`); Numba's ``np.dot`` and ``np.linalg`` (which check BLAS
when they compile) are unaffected. ``tests/test_startup.py`` checks that a JIT DVH run leaves
``scipy.linalg`` unimported.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
import types
from pathlib import Path

import numpy as np

#: the module name the build's extension is compiled under (its ``PyInit_`` symbol)
AOT_MODULE = "rtplan_assist_kernels_aot"
#: where the build and its manifest live (next to Numba's JIT cache, untracked by git)
AOT_DIR = Path(__file__).resolve().parent / "__pycache__"
#: manifest format; a build with another one is ignored
AOT_FORMAT = 1
#: ``RTPLAN_ASSIST_KERNELS``: ``jit`` forces the JIT; anything else uses the build when it fits
ENV = "RTPLAN_ASSIST_KERNELS"

#: ``prange`` in kernel source: ``range`` until the JIT gives them Numba's (the build compiles
#: the loops serially: ``prange`` is ``range`` for Numba outside ``parallel=True``)
prange = range

_KERNELS: list[Kernel] = []
_LOCK = threading.RLock()
_STATE: dict = {"aot": None, "aot_status": None}
#: while not None, every JIT call records ``(kernel, key, Numba argument types)`` here
#: (the build's workload); see :func:`recording`
_RECORD: dict | None = None


class Kernel:
    """One kernel: its Python function and Numba options; calling it runs the build or the JIT."""

    def __init__(self, fn: types.FunctionType, options: dict) -> None:
        self.py_func = fn
        self.options = options
        self.name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"
        self.dispatcher = None  # Numba's, once the JIT is set up
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<kernel {self.name}>"

    def __call__(self, *args):
        if _RECORD is None:
            aot = _STATE["aot"] if _STATE["aot_status"] is not None else _load_aot()
            if aot is not None:
                entries = aot[0].get(self.name)
                if entries is not None:
                    key = signature_key(args)
                    fn = entries.get(key)
                    if fn is not None:
                        return fn(*args)
        return self.jit(*args)

    @property
    def jit(self):
        """Numba's dispatcher for this kernel (sets the JIT up on first use)."""
        if self.dispatcher is None:
            _setup_jit()
        if _RECORD is not None:
            return _Recorder(self)
        return self.dispatcher


class _Recorder:
    """A JIT call that notes its signature for the build (see :func:`recording`)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k

    def __call__(self, *args):
        out = self.k.dispatcher(*args)
        argtypes = tuple(self.k.dispatcher.typeof_pyval(a) for a in args)
        _RECORD.setdefault((self.k.name, signature_key(args)), (self.k, argtypes))
        return out


def kernel(**options):
    """Decorator: a kernel compiled with ``njit(cache=True, **options)`` (module docstring)."""

    def wrap(fn: types.FunctionType) -> Kernel:
        k = Kernel(fn, dict(options))
        _KERNELS.append(k)
        return k

    return wrap


# -- signatures -----------------------------------------------------------------------------
def signature_key(args: tuple) -> str | None:
    """What decides the Numba signature of a call, from the arguments alone (no Numba): dtype,
    rank, layout and alignment of arrays; the scalar types; tuples item by item. ``None`` for
    an argument this does not know (the call then runs on the JIT).

    Writability is left out: Numba types a read-only array apart, but the build's compiled
    code takes either for an array it only reads, and every array a caller passes to a
    kernel is only read, except ``add_eqd2_box``'s ``total``, whose wrapper refuses a
    read-only one (the JIT would refuse to write into it). So a read-only dose (the loader's)
    runs on the build compiled for a writable one, and the other way round."""
    parts = []
    for a in args:
        p = _arg_key(a)
        if p is None:
            return None
        parts.append(p)
    return "(" + ",".join(parts) + ")"


def _arg_key(a) -> str | None:
    if isinstance(a, np.ndarray):
        f = a.flags
        layout = "C" if f.c_contiguous else "F" if f.f_contiguous else "A"
        return f"a{a.dtype.str}{a.ndim}{layout}{'' if f.aligned else 'u'}"
    if isinstance(a, bool):
        return "b"
    if isinstance(a, np.generic):
        return f"s{a.dtype.str}"
    if isinstance(a, int):
        return "i" if -(2**63) <= a < 2**63 else None
    if isinstance(a, float):
        return "f"
    if isinstance(a, tuple):
        items = [_arg_key(x) for x in a]
        if any(x is None for x in items):
            return None
        kind = type(a)
        tag = "" if kind is tuple else f"{kind.__module__}.{kind.__qualname__}"
        return f"t{tag}[{','.join(items)}]"
    return None


# -- ahead-of-time build ------------------------------------------------------------------------
def source_hash() -> str:
    """Hash of every kernel source file (a build of other sources is not used)."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def aot_paths() -> tuple[Path, Path]:
    """(extension, manifest) paths of the build for this interpreter."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return AOT_DIR / f"{AOT_MODULE}{suffix}", AOT_DIR / f"{AOT_MODULE}.json"


def expected_manifest() -> dict:
    """The manifest fields a usable build must have (the build writes them)."""
    return {"format": AOT_FORMAT, "sources": source_hash(), "numpy": np.__version__,
            "python": sys.implementation.cache_tag}


def aot_status() -> str:
    """``ahead-of-time build (N signatures)``, or why the JIT runs instead (one line)."""
    _load_aot()
    return _STATE["aot_status"]


def _load_aot():
    with _LOCK:
        if _STATE["aot_status"] is not None:
            return _STATE["aot"]
        aot, status = None, ""
        if os.environ.get(ENV, "").strip().lower() == "jit":
            status = f"JIT ({ENV}=jit)"
        else:
            so, manifest_path = aot_paths()
            try:
                manifest = json.loads(manifest_path.read_text())
            except (OSError, ValueError):
                manifest = None
            if manifest is None or not so.is_file():
                status = "JIT (no ahead-of-time build: run scripts/setup.sh)"
            elif any(manifest.get(k) != v for k, v in expected_manifest().items()):
                status = "JIT (the ahead-of-time build is stale: run scripts/setup.sh)"
            else:
                try:
                    spec = importlib.util.spec_from_file_location(AOT_MODULE, so)
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                    table = {name: {key: getattr(module, export)
                                    for key, export in sigs.items()}
                             for name, sigs in manifest["entries"].items()}
                    n = sum(len(v) for v in table.values())
                    aot = (table, module)
                    status = f"ahead-of-time build ({n} signatures)"
                except (ImportError, OSError, AttributeError, KeyError, TypeError) as exc:
                    status = f"JIT (the ahead-of-time build does not load: {exc})"
        _STATE["aot"], _STATE["aot_status"] = aot, status
        return aot


# -- JIT ---------------------------------------------------------------------------------------
def _setup_jit() -> None:
    """Give every kernel without one its Numba dispatcher: each function is re-bound to a copy
    of its module's globals in which the kernels are their dispatchers and ``prange`` is
    Numba's (a kernel module imported later gets its own on its first JIT call)."""
    with _LOCK:
        pending = [k for k in _KERNELS if k.dispatcher is None]
        if not pending:
            return
        _skip_numba_blas_probe()
        import numba

        namespaces: dict[str, dict] = {}
        for k in pending:
            if k.py_func.__module__ not in namespaces:
                namespaces[k.py_func.__module__] = dict(k.py_func.__globals__)
        for k in pending:
            fn = k.py_func
            clone = types.FunctionType(fn.__code__, namespaces[fn.__module__], fn.__name__,
                                       fn.__defaults__, fn.__closure__)
            clone.__qualname__, clone.__module__ = fn.__qualname__, fn.__module__
            clone.__doc__, clone.__kwdefaults__ = fn.__doc__, fn.__kwdefaults__
            k.dispatcher = numba.njit(cache=True, **k.options)(clone)
        for g in namespaces.values():
            for name, value in list(g.items()):
                if isinstance(value, Kernel):
                    g[name] = value.dispatcher
            if g.get("prange") is range:
                g["prange"] = numba.prange


class recording:
    """Context manager: run a workload on the JIT and collect the signatures it calls, as
    ``{(kernel name, key): (Kernel, Numba argument types)}`` (for the build)."""

    def __enter__(self) -> dict:
        global _RECORD
        _RECORD = {}
        return _RECORD

    def __exit__(self, *exc) -> None:
        global _RECORD
        _RECORD = None


def kernels() -> list[Kernel]:
    """Every kernel defined so far (import the kernel modules first)."""
    return list(_KERNELS)


def _skip_numba_blas_probe() -> None:
    """Import ``numba.np.arraymath`` with its module-level BLAS probe answered "no"."""
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        import numba.np.linalg as nb_linalg
    except ImportError:  # pragma: no cover - numba without its numpy support
        return
    real = getattr(nb_linalg, "ensure_blas", None)
    if real is None:  # pragma: no cover - another numba: leave it alone
        return

    def _no_blas() -> None:
        raise ImportError("rtplan-assist kernels use no BLAS")

    nb_linalg.ensure_blas = _no_blas
    try:
        import numba.np.arraymath as nb_arraymath
    finally:
        nb_linalg.ensure_blas = real
    if getattr(nb_arraymath, "ensure_blas", None) is _no_blas:
        nb_arraymath.ensure_blas = real
