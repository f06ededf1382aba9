"""Compile the fused CPU engine on first use and cache it; say once, clearly, why when that fails.

The C++ sources next to this file are built with ``torch.utils.cpp_extension.load`` (ninja + the
system C++ compiler) into ``$LSTMKIT_CACHE`` or ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/lstmkit``,
in a folder named after a hash of the sources, the flags and the torch version, so a second process
(or a second run) loads the cached library in well under a second. Nothing is ever downloaded.

Set ``LSTMKIT_CPU_ENGINE=0`` to switch the engine off (the reference and native backends still work).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import threading
import warnings
from pathlib import Path

import torch

SOURCES = ("lstm_forward.cpp", "lstm_backward.cpp", "gru_rnn.cpp", "step.cpp", "projection.cpp",
           "python_bindings.cpp")
HEADERS = ("cpu_math.h",)
_HERE = Path(__file__).resolve().parent

_lock = threading.Lock()
_state: dict[str, object] = {}          # "ok": bool, "reason": str once a build was attempted,
                                        # "module": the built Python module (python_bindings.cpp)


def cache_root() -> Path:
    for var in ("LSTMKIT_CACHE", "TORCH_EXTENSIONS_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var]) / "lstmkit"
    return Path.home() / ".cache" / "lstmkit"


def compile_flags(openmp: bool = True) -> list[str]:
    """-O3, plus AVX2/FMA only when this CPU has them (the hash below keys the cache on the flags,
    so a library built for one machine is never loaded on a machine that lacks its instructions),
    plus openmp_flags() unless openmp=False."""
    flags = ["-O3", "-fno-math-errno", "-fno-trapping-math"]  # lets gcc if-convert (vectorise) the clamps
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")()
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags + (openmp_flags() if openmp else [])


def openmp_flags() -> list[str]:
    """-fopenmp where torch runs its threads with OpenMP (Linux wheels: GNU OpenMP, whose libgomp.so.1
    torch ships and has loaded, so the engine shares torch's thread pool and torch.set_num_threads).
    Without it ATen's parallel_for, a header template, compiles to a plain loop: the kernels' thread
    splits would never run."""
    linux = os.name == "posix" and os.uname().sysname == "Linux"
    return ["-fopenmp"] if linux and torch.backends.openmp.is_available() else []


def _build_name(flags: list[str]) -> str:
    """The cache folder's name: the sources, flags and torch, and where the sources lie (ninja's build
    file names them by path, so two installs sharing one folder would rebuild over each other)."""
    digest = hashlib.sha256(str(_HERE.resolve()).encode())
    for name in SOURCES + HEADERS:
        digest.update((_HERE / name).read_bytes())
    digest.update(" ".join(flags).encode())
    digest.update(torch.__version__.encode())
    return "lstmkit_cpu_" + digest.hexdigest()[:12]


def _missing_tool() -> str | None:
    """Why a build cannot even start (no compiler, no ninja), or None."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler found (looked for {compiler!r}; install g++ or clang, or set CXX)"
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja, or pip install 'lstmkit[cpu]')"
    return None


def _compile(flags: list[str]):
    """Build (or load from the cache), register the lstmkit:: operators with torch (as the library
    loads) and return it as a Python module (its direct bindings)."""
    from torch.utils import cpp_extension

    name = _build_name(flags)
    build_dir = cache_root() / name
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(name=name, sources=[str(_HERE / s) for s in SOURCES], extra_cflags=flags,
                              extra_ldflags=[f for f in flags if f == "-fopenmp"],
                              build_directory=str(build_dir), is_python_module=True, verbose=False)


def load() -> tuple[bool, str]:
    """Build or load the engine once per process. Returns (available, reason it is not)."""
    with _lock:
        if "ok" in _state:
            return bool(_state["ok"]), str(_state["reason"])
        reason, module = "", None
        if os.environ.get("LSTMKIT_CPU_ENGINE", "1") == "0":
            reason = "switched off by LSTMKIT_CPU_ENGINE=0"
        else:
            reason = _missing_tool() or ""
        if not reason:
            try:
                module = _compile(compile_flags())
            except Exception as error:  # a failed compile must leave the other backends working
                reason = f"compiling the C++ sources failed: {_first_error(error)}"
                module = _without_openmp(reason)
                if module is not None:
                    reason = ""
        _state.update(ok=not reason, reason=reason, module=module)
        if reason:
            warnings.warn(f"lstmkit: the cpu engine is unavailable: {reason}. "
                          "The bptt, native and loop engines still work.", RuntimeWarning, stacklevel=3)
        return not reason, reason


def _first_error(error: Exception) -> str:
    """The compiler's own "file:line: error: ..." line; torch's "Error building extension 'name':
    <command>" line only when there is none."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    first = next((ln for ln in lines if "error:" in ln),
                 next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else ""))
    return first or type(error).__name__


def _without_openmp(reason: str):
    """After a failed build with -fopenmp (a compiler without OpenMP, e.g. clang without libomp): the
    library built without it, running on one thread, and a warning that says so; None if that fails too."""
    if not openmp_flags():
        return None
    try:
        built = _compile(compile_flags(openmp=False))
    except Exception:  # noqa: BLE001 - the first failure is the one reported
        return None
    warnings.warn(f"lstmkit: the cpu engine was built without OpenMP and runs on one thread ({reason})",
                  RuntimeWarning, stacklevel=4)
    return built


def module():
    """The built library as a Python module (its direct bindings), after a successful load()."""
    return _state["module"]


def reset() -> None:
    """Forget the outcome of the last attempt (for tests that simulate a failure)."""
    with _lock:
        _state.clear()
    import lstmkit.engines.cpu as engine
    engine._ready = False


if __name__ == "__main__":  # python -m lstmkit.engines.cpu.build: compile now (e.g. after install)
    ok, why = load()
    print(f"lstmkit cpu engine: {'ready in ' + str(cache_root()) if ok else 'unavailable: ' + why}")
    raise SystemExit(0 if ok else 1)
