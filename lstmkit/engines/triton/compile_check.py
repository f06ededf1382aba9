"""Compile the kernels for a GPU on a machine without one: what the CPU can check of the CUDA path.

    with compiled_for(GPUTarget("cuda", 90, 32)) as report:   # an H100/H200
        call the engine on CPU tensors, forward and backward
    report: one Compiled per distinct launch, with ptxas's registers and spills

Inside the block the engine launches nothing: each launch it would make is compiled instead, with
the same constants and argument types, for the target (outputs are left unwritten: only their
shapes matter here). Triton's front end, its GPU passes and ptxas all run, so a kernel that would
not compile on that GPU fails here. It needs a process whose Triton compiles (TRITON_INTERPRET
unset when Triton was imported). What only a GPU can tell: whether the grid barrier and the reads
across multiprocessors are right, and how fast it all is.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from lstmkit.engines.triton import launch as launches

_TYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int32: "i32",
          torch.int64: "i64"}


@dataclass
class Compiled:
    kernel: str
    constants: dict
    options: dict               # num_warps, num_stages
    registers: int | None       # per thread, from ptxas -v
    spilled_bytes: int | None   # spill stores
    shared_bytes: int


def _signature(fn, args: list, constants: dict) -> tuple[dict, dict]:
    """Triton's signature strings for ``args`` (positional) and the constexpr values, by name."""
    signature, constexprs = {}, {}
    names = [p.name for p in fn.params]
    for name, value in zip(names, args):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + _TYPES[value.dtype]
        elif isinstance(value, bool):
            signature[name] = "i1"
        elif isinstance(value, int):
            signature[name] = "i32" if -2**31 <= value < 2**31 else "i64"
        else:
            signature[name] = "fp32"
    for name in names[len(args):]:
        signature[name] = "constexpr"
        constexprs[name] = constants[name]
    return signature, constexprs


def _ptxas_usage(ptx: str, capability: int) -> tuple[int | None, int | None]:
    """Registers per thread and spilled bytes that ptxas reports for ``ptx`` (None where it cannot run)."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "kernel.ptx"
        path.write_text(ptx)
        try:
            ptxas = get_ptxas(capability).path
            arch = f"sm_{capability}a" if capability >= 90 else f"sm_{capability}"
            out = subprocess.run([ptxas, f"-arch={arch}", "-v", str(path), "-o", str(path.with_suffix(".cubin"))],
                                 capture_output=True, text=True, timeout=300)
        except Exception:   # a report, not a check: ptxas missing or another Triton's API
            return None, None
    text = out.stdout + out.stderr
    regs = re.search(r"Used (\d+) registers", text)
    spills = re.search(r"(\d+) bytes spill stores", text)
    return (int(regs.group(1)) if regs else None), (int(spills.group(1)) if spills else None)


class _Compiler:
    """Compiles each distinct launch for the target; its tilings are chosen as for ``multiprocessors``."""

    def __init__(self, target, multiprocessors: int) -> None:
        self.target, self.multiprocessors = target, multiprocessors
        self.report: list[Compiled] = []
        self.seen: set = set()

    def __call__(self, kernel: str, grid, args: list, constants: dict, tiling) -> None:
        import triton
        from triton.compiler import ASTSource

        constants = dict(constants, INTERPRET=False)
        types = tuple(_TYPES.get(getattr(a, "dtype", None), type(a).__name__) for a in args)
        options = {"num_warps": tiling.num_warps, "num_stages": tiling.num_stages}
        key = (kernel, tuple(sorted(constants.items())), types, tuple(options.items()))
        if key in self.seen:
            return
        self.seen.add(key)
        fn = launches.kernels()[kernel]
        signature, constexprs = _signature(fn, args, constants)
        binary = triton.compile(ASTSource(fn, signature, constexprs), target=self.target,
                                options=options)
        regs, spills = _ptxas_usage(binary.asm["ptx"], self.target.arch)
        self.report.append(Compiled(kernel, constants, options, regs, spills, binary.metadata.shared))


@contextlib.contextmanager
def compiled_for(target, multiprocessors: int = 132):
    """Compile every launch inside the block for ``target`` (a ``triton.backends.compiler.GPUTarget``),
    with the tilings the engine would choose on a GPU of ``multiprocessors`` (an H100/H200: 132)."""
    if launches.mode() != "compiled":
        raise RuntimeError("Triton was imported with TRITON_INTERPRET=1 in this process: it cannot compile here")
    compiler = _Compiler(target, multiprocessors)
    launches._DRY_RUN.append(compiler)
    try:
        yield compiler.report
    finally:
        launches._DRY_RUN.remove(compiler)


def _default_tilings_table(hiddens: list[int], batches: list[int], dtypes: list[str], variant: dict) -> None:
    """Compile forward and backward with the default tilings at each size; print ptxas's usage."""
    from triton.backends.compiler import GPUTarget

    from lstmkit.engines import triton as engine
    from lstmkit.engines.contract import LSTMState, LSTMWeights

    print("| dtype | B | H | kernel | programs | block_h | warps | resident | registers | spilled bytes | shared KiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dtype in dtypes:
        for hidden in hiddens:
            for batch in batches:
                kw = dict(dtype=getattr(torch, dtype), requires_grad=True)
                norm = ({"ln_hh": torch.ones(4 * hidden, **kw), "ln_c_w": torch.ones(hidden, **kw),
                         "ln_c_b": torch.zeros(hidden, **kw)} if variant.get("layer_norm") else {})
                with compiled_for(GPUTarget("cuda", 90, 32)) as report:
                    y = engine.lstm(torch.zeros(2, batch, 4 * hidden, **kw),
                                    LSTMState(torch.zeros(batch, hidden, **kw), torch.zeros(batch, hidden, **kw)),
                                    LSTMWeights(torch.zeros(4 * hidden, hidden, **kw), **norm)).y
                    y.sum().backward()
                for c in report:
                    k = c.constants
                    print(f"| {dtype} | {batch} | {hidden} | {c.kernel} | {k['PROGRAMS']} | {k['BLOCK_H']} | "
                          f"{c.options['num_warps']} | {k['RESIDENT']} | {c.registers} | {c.spilled_bytes} | "
                          f"{c.shared_bytes // 1024} |", flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Registers and spills of the default tilings on an H100/H200")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 256, 768])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--layer-norm", action="store_true")
    args = parser.parse_args()
    _default_tilings_table(args.hidden, args.batch, args.dtype, {"layer_norm": args.layer_norm})
