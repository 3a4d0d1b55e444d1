#!/usr/bin/env python3
"""The DeepNode epoch (SPEC.md §5 steps 1 to 11, or Yuma 3 of SPEC.md §10 without liquid alpha)
as a researcher would write it in numpy + scipy.sparse: the baseline that `deepnode-bench epoch
--baseline` times beside the Rust epoch.

Reads a workload written by `deepnode-bench epoch` (format below), times `epochs` cold epochs (no
bonds) and `epochs` steady ones (bonds of the previous epoch, after one warm-up), writes the
outputs of the last steady epoch for the Rust side to compare, and prints one JSON line:
{"cold_s": median, "steady_s": median, "peak_rss_mib": VmHWM}. Times are the main thread's
CPU time (time.thread_time), as `deepnode-bench epoch` reports on-CPU time on a shared machine.

Workload file (little-endian): b"DNW1", n u64, nnz u64, rho f64, kappa f64, self_share f64,
trust_threshold f64, emission u64, mask_self_weights u8, bond mode u8 (0 cumulative, 1 EMA,
2 Yuma 3), alpha f64 (EMA: alpha; Yuma 3: bonds_moving_average), for mode 2 only
bonds_penalty f64, then stake u64[n], indptr u64[n+1], indices u32[nnz], weights u16[nnz] (CSR
rows, sorted by uid). Outputs file: rank, trust, consensus, incentive, dividends f64[n], minted
u64[n], loss f64, then the bonds' column sums f64[n] (Yuma 3: trust is validator trust, the
column sums those of the bonds before the u16 store).

usage: numpy_epoch.py WORKLOAD OUTPUTS EPOCHS
"""

import json
import struct
import sys
import time

import numpy as np
import scipy.sparse as sp


def read_workload(path):
    with open(path, "rb") as f:
        head = f.read(4 + 8 * 2 + 8 * 4 + 8 + 2 + 8)
        magic = head[:4]
        if magic != b"DNW1":
            raise SystemExit(f"{path}: not a DNW1 workload")
        n, nnz, rho, kappa, lam, th, emission, mask, mode, alpha = struct.unpack(
            "<QQddddQBBd", head[4:]
        )
        penalty = struct.unpack("<d", f.read(8))[0] if mode == 2 else 0.0
        stake = np.fromfile(f, dtype="<u8", count=n)
        indptr = np.fromfile(f, dtype="<u8", count=n + 1).astype(np.int64)
        indices = np.fromfile(f, dtype="<u4", count=nnz).astype(np.int32)
        weights = np.fromfile(f, dtype="<u2", count=nnz)
    w = sp.csr_matrix((weights.astype(np.float64), indices, indptr), shape=(n, n))
    params = dict(rho=rho, kappa=kappa, self_share=lam, trust_threshold=th,
                  emission=emission, mask=bool(mask), ema=mode == 1, yuma3=mode == 2,
                  alpha=alpha, penalty=penalty)
    return stake, w, params


def normalised(weights, mask, keep):
    """Rows divided by their sums (self weights removed first when masked; only rows where
    `keep` holds)."""
    n = keep.shape[0]
    w = weights
    if mask:
        w = w.tolil()
        w.setdiag(0)
        w = w.tocsr()
        w.eliminate_zeros()
    row_sum = np.asarray(w.sum(axis=1)).ravel()
    inv = np.divide(1.0, row_sum, out=np.zeros(n), where=(row_sum > 0) & keep)
    wn = sp.csr_matrix(sp.diags(inv) @ w)
    wn.eliminate_zeros()
    return wn


def mint(incentive, dividends, p):
    """11. delta = lambda i + (1 - lambda) d; minted = floor(emission delta)."""
    lam = p["self_share"]
    delta = lam * incentive + (1.0 - lam) * dividends
    return np.floor(p["emission"] * np.clip(delta, 0.0, 1.0)).astype(np.uint64)


def yuma3_epoch(stake, weights, bonds, p):
    """One Yuma 3 epoch (SPEC.md §10, no liquid alpha, every row present); returns (outputs
    dict, new bonds)."""
    n = stake.shape[0]
    # Y2. a_i = stake_i / sum(stake); a row without stake has no weights.
    total = float(stake.sum(dtype=np.float64))
    a = stake / total if total > 0 else np.zeros(n)
    wn = normalised(weights, p["mask"], stake > 0).tocoo()
    r, c, v = wn.row, wn.col, wn.data
    # Y3. The stake-weighted median of each column: its scores sorted, the voters without an
    # entry scoring 0; the smallest score whose stake at or below it exceeds P - kappa.
    big = a.sum()
    minority = big - p["kappa"]
    order = np.lexsort((v, c))
    cs, vs = c[order], v[order]
    cum = np.cumsum(a[r][order])
    starts = np.searchsorted(cs, np.arange(n))
    ends = np.searchsorted(cs, np.arange(n), side="right")
    before = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)
    zeros = big - np.bincount(c, weights=a[r], minlength=n)
    consensus = np.where(ends > starts, vs[np.maximum(ends - 1, 0)], 0.0)
    hit = np.flatnonzero(zeros[cs] + cum - before[cs] > minority)
    cols, first = np.unique(cs[hit], return_index=True)
    consensus[cols] = vs[hit[first]]
    consensus[zeros > minority] = 0.0
    # Y4-Y6. Clipped weights, validator trust, rank and incentive.
    k = np.minimum(v, consensus[c])
    trust = np.bincount(r, weights=k, minlength=n)
    rank = np.bincount(c, weights=a[r] * k, minlength=n)
    r_sum = rank.sum()
    incentive = rank / r_sum if r_sum > 0 else np.zeros(n)
    # Y7-Y8. u = w - penalty (w - clip); B' = min(1, (1 - alpha) B + alpha u), alpha = 1 - m.
    u = v - p["penalty"] * (v - k)
    alpha = 1.0 - p["alpha"]
    fresh = sp.csr_matrix((u, (r, c)), shape=(n, n))
    bonds = sp.csr_matrix((1.0 - alpha) * bonds + alpha * fresh)
    bonds.data = np.minimum(bonds.data, 1.0)
    bonds.eliminate_zeros()
    # Y9. D_i = a_i sum_j (B'_ij / C_j) I_j, normalised.
    col_sum = np.asarray(bonds.sum(axis=0)).ravel()
    g = np.divide(incentive, col_sum, out=np.zeros(n), where=col_sum > 0)
    held = a * (bonds @ g)
    d_sum = held.sum()
    dividends = held / d_sum if d_sum > 0 else np.zeros(n)
    # Y10. Stored on the u16 grid; a node without stake keeps none.
    bonds.data = np.floor(65535.0 * bonds.data) / 65535.0
    bonds = sp.diags((stake > 0).astype(np.float64)) @ bonds
    bonds = sp.csr_matrix(bonds)
    bonds.eliminate_zeros()
    out = dict(rank=rank, trust=trust, consensus=consensus, incentive=incentive,
               dividends=dividends, minted=mint(incentive, dividends, p), loss=0.0,
               col_sum=col_sum)
    return out, bonds


def epoch(stake, weights, bonds, p):
    """One epoch; returns (outputs dict, new bonds)."""
    if p["yuma3"]:
        return yuma3_epoch(stake, weights, bonds, p)
    n = stake.shape[0]
    # 1. s_i = stake_i / sum(stake).
    total = float(stake.sum(dtype=np.float64))
    s = stake / total if total > 0 else np.zeros(n)
    # 2. w_ij = weight_ij / sum_j weight_ij (self weights removed first when masked).
    w = weights
    if p["mask"]:
        w = w.tolil()
        w.setdiag(0)
        w = w.tocsr()
        w.eliminate_zeros()
    row_sum = np.asarray(w.sum(axis=1)).ravel()
    inv = np.divide(1.0, row_sum, out=np.zeros(n), where=row_sum > 0)
    wn = sp.diags(inv) @ w
    # 3. R = W^T S.  4. T = [W > threshold]^T S.
    rank = wn.T @ s
    trust = (wn > p["trust_threshold"]).astype(np.float64).T @ s
    # 5. c = sigmoid(rho (t - kappa)).  6. i = r c / sum(r c).  7. L = -sum r (c - 1/2).
    c = 1.0 / (1.0 + np.exp(-p["rho"] * (trust - p["kappa"])))
    x = rank * c
    x_sum = x.sum()
    incentive = x / x_sum if x_sum > 0 else np.zeros(n)
    loss = -(rank * (c - 0.5)).sum()
    # 8. Bonds: cumulative B + W S, or EMA.
    ws = sp.diags(s) @ wn
    if p["ema"]:
        col = np.asarray(ws.sum(axis=0)).ravel()
        inv_col = np.divide(1.0, col, out=np.zeros(n), where=col > 0)
        bonds = (1.0 - p["alpha"]) * bonds + p["alpha"] * (ws @ sp.diags(inv_col))
    else:
        bonds = bonds + ws
    bonds = sp.csr_matrix(bonds)
    bonds.eliminate_zeros()
    # 9-10. beta = B / column sums; d = beta i.
    col_sum = np.asarray(bonds.sum(axis=0)).ravel()
    g = np.divide(incentive, col_sum, out=np.zeros(n), where=col_sum > 0)
    dividends = bonds @ g
    # 11. delta = lambda i + (1 - lambda) d; minted = floor(emission delta).
    lam = p["self_share"]
    delta = lam * incentive + (1.0 - lam) * dividends
    minted = np.floor(p["emission"] * np.clip(delta, 0.0, 1.0)).astype(np.uint64)
    out = dict(rank=rank, trust=trust, consensus=c, incentive=incentive,
               dividends=dividends, minted=minted, loss=loss, col_sum=col_sum)
    return out, bonds


def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    stake, weights, p = read_workload(sys.argv[1])
    epochs = int(sys.argv[3])
    n = stake.shape[0]
    empty = sp.csr_matrix((n, n), dtype=np.float64)
    cold = []
    for _ in range(epochs):
        t = time.thread_time()
        out, bonds = epoch(stake, weights, empty, p)
        cold.append(time.thread_time() - t)
    steady = []
    for _ in range(epochs):
        t = time.thread_time()
        out, bonds = epoch(stake, weights, bonds, p)
        steady.append(time.thread_time() - t)
    with open(sys.argv[2], "wb") as f:
        for name in ("rank", "trust", "consensus", "incentive", "dividends"):
            f.write(np.asarray(out[name], dtype="<f8").tobytes())
        f.write(np.asarray(out["minted"], dtype="<u8").tobytes())
        f.write(struct.pack("<d", out["loss"]))
        f.write(np.asarray(out["col_sum"], dtype="<f8").tobytes())
    print(json.dumps({"cold_s": float(np.median(cold)), "steady_s": float(np.median(steady)),
                      "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
