"""What every recurrence kernel shares: the step being run, the grid barrier, the products.

Layout of every buffer: contiguous, time-indexed (T, B, X) for per-step values, processing-indexed
(T+1, B, X) for states (slot k is what step k reads, slot k+1 what it writes). All arithmetic is
float32; the recurrent products take their operands in the weights' dtype (bfloat16/float16 tensor
cores, float32 without TF32).

Programs: grid (batch tiles, PROGRAMS). The PROGRAMS programs of one batch tile split the hidden
units between them and meet at ``sync`` wherever a step needs values of other programs (the full h
for the next product, row statistics of a layer norm). With PROGRAMS == 1 one program owns every
hidden unit of its rows, loops over the tiles itself, and ``sync`` is only a barrier between its
own threads: that is the mode the CPU interpreter runs (its programs run one after another, so a
grid-wide wait would never end).
"""
import triton
import triton.language as tl


@triton.jit
def sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def step_time(k, T, REVERSE: tl.constexpr):
    """Time t of processing step k: k forwards, T-1-k in reverse."""
    t = k
    if REVERSE:
        t = T - 1 - k
    return t


@triton.jit
def active_rows(sizes, t, rows, B, PACKED: tl.constexpr):
    """(BLOCK_B,) bool: rows that take step t (a packed batch's rows past its length hold their state)."""
    n = B
    if PACKED:
        n = tl.load(sizes + t)
    return rows < n


@triton.jit
def step_at(k, T, sizes, rows, B, REVERSE: tl.constexpr, PACKED: tl.constexpr):
    """Time t of processing step k, and which rows take it: (BLOCK_B, 1) bool."""
    t = step_time(k, T, REVERSE)
    return t, active_rows(sizes, t, rows, B, PACKED)[:, None]


@triton.jit
def tile_columns(tile, BLOCK_H: tl.constexpr, SIZE: tl.constexpr):
    """Columns of tile ``tile`` of a SIZE-wide dimension, and which of them exist."""
    cols = tile * BLOCK_H + tl.arange(0, BLOCK_H)
    return cols, cols < SIZE


@triton.jit
def sync(counter, count, PROGRAMS: tl.constexpr):
    """Barrier for the programs of one batch tile; ``count`` numbers the barriers from 1 per launch.

    Every program adds one to ``counter`` (zero at launch) and waits until all PROGRAMS have added
    ``count`` times. The release/acquire atomics make the stores before it visible after it; the
    readers of other programs' values load them with ``cache_modifier=".cg"`` (past the L1, which
    is not coherent between multiprocessors).
    """
    tl.debug_barrier()
    if PROGRAMS > 1:
        tl.atomic_add(counter, 1, sem="release", scope="gpu")
        seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
        while seen < count * PROGRAMS:
            seen = tl.atomic_add(counter, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()


@triton.jit
def round_to(x, DTYPE: tl.constexpr):
    """float32 x rounded to bfloat16/float16 (to nearest even) and back: the interpreter's own
    bfloat16 conversion truncates and its bfloat16 arithmetic is not IEEE, so it multiplies these."""
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.int32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & -65536
        x = bits.to(tl.float32, bitcast=True)
    else:
        x = x.to(tl.float16).to(tl.float32)
    return x


@triton.jit
def dot(a, w, INTERPRET: tl.constexpr):
    """a (M, K) float32 @ w (K, N) in the weights' dtype -> (M, N) float32.

    float32 is multiplied exactly (no TF32: parity with the specification at 1e-5); bfloat16 and
    float16 round a to w's dtype and use the tensor cores with float32 accumulation.
    """
    if w.dtype == tl.float32:
        out = tl.dot(a, w, input_precision="ieee")
    elif INTERPRET:
        out = tl.dot(round_to(a, w.dtype), w.to(tl.float32), input_precision="ieee")
    else:
        out = tl.dot(a.to(w.dtype), w)
    return out


@triton.jit
def load_rows(ptr, rows, row_ok, cols, col_ok, width, SHARED: tl.constexpr):
    """(BLOCK_B, BLOCK) float32 block of a row-major (·, width) matrix; 0 outside it.

    SHARED: written by other programs since the last ``sync``: read past the L1.
    """
    mask = row_ok[:, None] & col_ok[None, :]
    offsets = rows[:, None] * width + cols[None, :]
    if SHARED:
        v = tl.load(ptr + offsets, mask=mask, other=0.0, cache_modifier=".cg")
    else:
        v = tl.load(ptr + offsets, mask=mask, other=0.0)
    return v.to(tl.float32)


@triton.jit
def per_unit(ptr, cols, col_ok):
    """(1, BLOCK_H) float32 slice of a per-unit parameter (peephole, norm gain or shift)."""
    return tl.load(ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]


@triton.jit
def store_rows(ptr, value, rows, row_ok, cols, col_ok, width):
    mask = row_ok[:, None] & col_ok[None, :]
    tl.store(ptr + rows[:, None] * width + cols[None, :], value, mask=mask)


@triton.jit
def gate_weights(w, gate, cols, col_ok, kk, k_ok, H: tl.constexpr, K: tl.constexpr):
    """(BLOCK_K, BLOCK_H) block of W[gate·H + cols, kk]^T from a row-major (G·H, K) matrix, as stored."""
    mask = k_ok[:, None] & col_ok[None, :]
    return tl.load(w + (gate * H + cols[None, :]) * K + kk[:, None], mask=mask, other=0.0)


@triton.jit
def gate_products(h, h_mask, rows, row_ok, w, cols, col_ok, H: tl.constexpr, K: tl.constexpr,
                  G: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr,
                  BLOCK_K: tl.constexpr, H_MASK: tl.constexpr, INTERPRET: tl.constexpr):
    """The recurrent products of one hidden tile, gate by gate: h (B, K) row-major, shared between
    programs; w (G·H, K). Returns four (BLOCK_B, BLOCK_H) float32 blocks; gate q of G fills slot
    4-G+q (LSTM i, f, g, o; coupled f, g, o in slots 1-3; GRU r, z, n in 1-3; RNN in slot 3),
    the slots before stay zero. Weights are streamed in BLOCK_K chunks (they stay in L1/L2)."""
    acc0 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    acc1 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    acc2 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    acc3 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        k_ok = kk < K
        hk = load_rows(h, rows, row_ok, kk, k_ok, K, True)
        if H_MASK:
            hk = hk * load_rows(h_mask, rows, row_ok, kk, k_ok, K, False)
        if G == 4:
            acc0 += dot(hk, gate_weights(w, 0, cols, col_ok, kk, k_ok, H, K), INTERPRET)
        if G >= 3:
            acc1 += dot(hk, gate_weights(w, G - 3, cols, col_ok, kk, k_ok, H, K), INTERPRET)
            acc2 += dot(hk, gate_weights(w, G - 2, cols, col_ok, kk, k_ok, H, K), INTERPRET)
        acc3 += dot(hk, gate_weights(w, G - 1, cols, col_ok, kk, k_ok, H, K), INTERPRET)
    return acc0, acc1, acc2, acc3


@triton.jit
def gate_products_resident(h, h_mask, rows, row_ok, w0, w1, w2, w3, K: tl.constexpr, G: tl.constexpr,
                           BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                           H_MASK: tl.constexpr, INTERPRET: tl.constexpr):
    """``gate_products`` with the weight blocks already on chip (loaded once before the steps;
    one chunk: K <= BLOCK_K)."""
    kk = tl.arange(0, BLOCK_K)
    k_ok = kk < K
    hk = load_rows(h, rows, row_ok, kk, k_ok, K, True)
    if H_MASK:
        hk = hk * load_rows(h_mask, rows, row_ok, kk, k_ok, K, False)
    acc0 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    acc1 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    acc2 = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    if G == 4:
        acc0 = dot(hk, w0, INTERPRET)
    if G >= 3:
        acc1 = dot(hk, w1, INTERPRET)
        acc2 = dot(hk, w2, INTERPRET)
    acc3 = dot(hk, w3, INTERPRET)
    return acc0, acc1, acc2, acc3


@triton.jit
def column_weights(w, gate, kk, k_ok, pcols, pcol_ok, H: tl.constexpr, P: tl.constexpr):
    """(BLOCK_K, BLOCK_H) block W[gate·H + kk, pcols] of a row-major (G·H, P) matrix, as stored."""
    mask = k_ok[:, None] & pcol_ok[None, :]
    return tl.load(w + (gate * H + kk[:, None]) * P + pcols[None, :], mask=mask, other=0.0)


@triton.jit
def back_products(d, rows, row_ok, w, pcols, pcol_ok, H: tl.constexpr, P: tl.constexpr, G: tl.constexpr,
                  BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                  INTERPRET: tl.constexpr):
    """(d @ W)[:, pcols]: d (B, G·H) row-major, shared between programs; w (G·H, P).
    The gradient that the recurrent products send back to h, for one tile of h's columns."""
    acc = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    for q in tl.static_range(G):
        for k0 in range(0, H, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            k_ok = kk < H
            dk = load_rows(d, rows, row_ok, q * H + kk, k_ok, G * H, True)
            acc += dot(dk, column_weights(w, q, kk, k_ok, pcols, pcol_ok, H, P), INTERPRET)
    return acc


@triton.jit
def back_products_resident(d, rows, row_ok, w0, w1, w2, w3, H: tl.constexpr, G: tl.constexpr,
                           BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                           INTERPRET: tl.constexpr):
    """``back_products`` with the weight blocks on chip (H <= BLOCK_K): gate q of G in slot 4-G+q."""
    kk = tl.arange(0, BLOCK_K)
    k_ok = kk < H
    acc = dot(load_rows(d, rows, row_ok, (G - 1) * H + kk, k_ok, G * H, True), w3, INTERPRET)
    if G >= 3:
        acc += dot(load_rows(d, rows, row_ok, (G - 3) * H + kk, k_ok, G * H, True), w1, INTERPRET)
        acc += dot(load_rows(d, rows, row_ok, (G - 2) * H + kk, k_ok, G * H, True), w2, INTERPRET)
    if G == 4:
        acc += dot(load_rows(d, rows, row_ok, kk, k_ok, G * H, True), w0, INTERPRET)
    return acc


@triton.jit
def _block(w, gate, cols, col_ok, kk, k_ok, H: tl.constexpr, K: tl.constexpr, COLUMNS: tl.constexpr):
    if COLUMNS:
        block = column_weights(w, gate, kk, k_ok, cols, col_ok, H, K)
    else:
        block = gate_weights(w, gate, cols, col_ok, kk, k_ok, H, K)
    return block


@triton.jit
def resident_weights(w, tile, H: tl.constexpr, K: tl.constexpr, G: tl.constexpr, BLOCK_H: tl.constexpr,
                     BLOCK_K: tl.constexpr, COLUMNS: tl.constexpr):
    """The four blocks of W (G·H, K) that stay on chip for tile ``tile``: its gate rows for the
    forward's ``gate_products_resident``, or (COLUMNS) its columns of K for the backward's
    ``back_products_resident``. Gate q of G in slot 4-G+q; unused slots repeat the last gate."""
    cols = tile * BLOCK_H + tl.arange(0, BLOCK_H)
    kk = tl.arange(0, BLOCK_K)
    if COLUMNS:
        col_ok = cols < K
        k_ok = kk < H
    else:
        col_ok = cols < H
        k_ok = kk < K
    w3 = _block(w, G - 1, cols, col_ok, kk, k_ok, H, K, COLUMNS)
    w0 = w3
    w1 = w3
    w2 = w3
    if G == 4:
        w0 = _block(w, 0, cols, col_ok, kk, k_ok, H, K, COLUMNS)
    if G >= 3:
        w1 = _block(w, G - 3, cols, col_ok, kk, k_ok, H, K, COLUMNS)
        w2 = _block(w, G - 2, cols, col_ok, kk, k_ok, H, K, COLUMNS)
    return w0, w1, w2, w3


@triton.jit
def program_start(counter, w, B, H: tl.constexpr, K: tl.constexpr, G: tl.constexpr, BLOCK_B: tl.constexpr,
                  BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr, RESIDENT: tl.constexpr, COLUMNS: tl.constexpr):
    """What every kernel starts with: B as int64 (offsets t·B·G·H outgrow int32 on long sequences),
    this program's place among its batch tile's (``me``), its rows, its tile's barrier counter and
    its resident weight blocks (stand-ins, never multiplied, when the weights are streamed)."""
    me = tl.program_id(1)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    B = B.to(tl.int64)
    w0, w1, w2, w3 = no_weights(w, BLOCK_H, BLOCK_K)
    if RESIDENT:
        w0, w1, w2, w3 = resident_weights(w, me, H, K, G, BLOCK_H, BLOCK_K, COLUMNS)
    return B, me, rows, rows < B, counter + tl.program_id(0), w0, w1, w2, w3


@triton.jit
def exchange_sums(part, me, rows, row_ok, s1, s2, counter, n_sync, B, PROGRAMS: tl.constexpr):
    """Every program's two per-row partial sums, added up over the programs of the batch tile
    through part (PROGRAMS, B, 2) and a ``sync``. Returns the totals and the barriers used so far."""
    tl.store(part + (me * B + rows) * 2, s1, mask=row_ok)
    tl.store(part + (me * B + rows) * 2 + 1, s2, mask=row_ok)
    n_sync += 1
    sync(counter, n_sync, PROGRAMS)
    t1 = tl.zeros(rows.shape, tl.float32)
    t2 = tl.zeros(rows.shape, tl.float32)
    for p in range(PROGRAMS):
        t1 += tl.load(part + (p * B + rows) * 2, mask=row_ok, other=0.0, cache_modifier=".cg")
        t2 += tl.load(part + (p * B + rows) * 2 + 1, mask=row_ok, other=0.0, cache_modifier=".cg")
    return t1, t2, n_sync


@triton.jit
def tile_products(h, h_mask, rows, row_ok, w, w0, w1, w2, w3, cols, col_ok, H: tl.constexpr, K: tl.constexpr,
                  G: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                  RESIDENT: tl.constexpr, H_MASK: tl.constexpr, INTERPRET: tl.constexpr):
    """``gate_products`` of one hidden tile, from the resident blocks w0..w3 or streamed from w."""
    if RESIDENT:
        p0, p1, p2, p3 = gate_products_resident(h, h_mask, rows, row_ok, w0, w1, w2, w3, K, G, BLOCK_B, BLOCK_H,
                                                BLOCK_K, H_MASK, INTERPRET)
    else:
        p0, p1, p2, p3 = gate_products(h, h_mask, rows, row_ok, w, cols, col_ok, H, K, G, BLOCK_B, BLOCK_H,
                                       BLOCK_K, H_MASK, INTERPRET)
    return p0, p1, p2, p3


@triton.jit
def back_tile_products(d, rows, row_ok, w, w0, w1, w2, w3, pcols, pcol_ok, H: tl.constexpr, P: tl.constexpr,
                       G: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                       RESIDENT: tl.constexpr, INTERPRET: tl.constexpr):
    """``back_products`` of one tile of h's columns, from the resident blocks or streamed from w."""
    if RESIDENT:
        acc = back_products_resident(d, rows, row_ok, w0, w1, w2, w3, H, G, BLOCK_B, BLOCK_H, BLOCK_K, INTERPRET)
    else:
        acc = back_products(d, rows, row_ok, w, pcols, pcol_ok, H, P, G, BLOCK_B, BLOCK_H, BLOCK_K, INTERPRET)
    return acc


@triton.jit
def no_weights(w, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """Stand-ins for the resident blocks when the weights are streamed (never multiplied)."""
    z = tl.zeros((BLOCK_K, BLOCK_H), w.dtype.element_ty)
    return z, z, z, z
