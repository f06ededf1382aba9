"""The kernels, compiled for CUDA or decorated for Triton's CPU interpreter, side by side.

``triton.jit`` decides at decoration whether a function is compiled or interpreted (by the
TRITON_INTERPRET knob), and an interpreted kernel must call interpreted helpers. So the kernels
package is loaded twice when both are wanted: as itself for CUDA tensors, and as a second copy
decorated under the interpreter knob for CPU tensors (the tests). Neither depends on the
environment at the moment lstmkit was imported.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import triton

_PACKAGE = "lstmkit.engines.triton.kernels"
_INTERPRETED = "lstmkit.engines.triton.kernels_interpreted"


def kernels(interpret: bool) -> ModuleType:
    """The kernels package: compiled (CUDA) or interpreted (CPU)."""
    name = _INTERPRETED if interpret else _PACKAGE
    if name in sys.modules:
        return sys.modules[name]
    with triton.knobs.runtime.scope():
        triton.knobs.runtime.interpret = interpret
        if not interpret:
            return importlib.import_module(_PACKAGE)
        folder = Path(__file__).with_name("kernels")
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module
