"""Identification rate at scale: streaming TPR@FPR on 10k queries x 1M distractors, and vs brute force.

    nice python bench/id_rate_scale.py [--identities 1000] [--per-identity 10] [--distractors 1000000]
        [--dim 512] [--compare-distractors 20000] [--device cpu] [--fast]

Random 512-d float32 unit embeddings: queries in clusters (``--spread`` sets how loose; 2.7 puts
same-identity similarities around 0.12, in the tail of the impostor distribution, so TPRs are neither
0 nor 1), distractors uniform on the sphere. Prints the streaming run's wall time and peak memory
(``ru_maxrss``) above the resident size with the embeddings loaded, the time the bare float64 matrix
products of all pairs take (the floor, extrapolated from one tile), then a side-by-side run of the
brute force (``facecore.evaluation.metrics.id_rate``) and the streaming version on all queries x
``--compare-distractors`` distractors: both times, the ratio and whether they agree exactly.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

FPRS = [0.5, 0.25, 0.1, 0.05, 0.01, 0.005, 0.001]


def rss_mb() -> float:
    """Current resident set size (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_embeddings(identities: int, per_identity: int, distractors: int, dim: int, spread: float,
                    seed: int = 0, chunk: int = 16384) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clustered unit queries (identity-major order), uniform unit distractors; float32, made in chunks."""
    rng = np.random.default_rng(seed)
    centers = unit_rows(rng.standard_normal((identities, dim), dtype=np.float32))
    labels = np.repeat(np.arange(identities), per_identity)
    q = np.empty((len(labels), dim), np.float32)
    for i in range(0, len(q), chunk):
        noise = rng.standard_normal((min(chunk, len(q) - i), dim), dtype=np.float32) * (spread / np.sqrt(dim))
        q[i:i + chunk] = unit_rows(centers[labels[i:i + chunk]] + noise)
    d = np.empty((distractors, dim), np.float32)
    for i in range(0, distractors, chunk):
        d[i:i + chunk] = unit_rows(rng.standard_normal((min(chunk, distractors - i), dim), dtype=np.float32))
    return q, labels, d


def product_floor(q: np.ndarray, n_pairs: int, exact: bool, device: str) -> float:
    """Seconds the bare matrix products of ``n_pairs`` pairs take, extrapolated from one 2048 x 4096 tile."""
    import torch

    dt = torch.float64 if exact else torch.float32
    a = torch.from_numpy(q[:2048]).to(dt).to(device)
    b = torch.from_numpy(q[:4096]).to(dt).to(device)
    out = torch.empty(len(a), len(b), dtype=dt, device=device)
    torch.mm(a, b.T, out=out)
    t = time.perf_counter()
    for _ in range(3):
        torch.mm(a, b.T, out=out)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / 3 / out.numel() * n_pairs


def show(r: dict) -> str:
    return "  ".join(f"TPR@{f:g}={t:.4f} (thr {h:+.5f})" for f, t, h in zip(r["fprs"], r["tprs"], r["thresholds"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--identities", type=int, default=1000)
    ap.add_argument("--per-identity", type=int, default=10)
    ap.add_argument("--distractors", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--spread", type=float, default=2.7, help="within-identity noise (norm relative to the centre)")
    ap.add_argument("--compare-distractors", type=int, default=20_000,
                    help="distractors for the side-by-side with the brute force (0: skip it)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fast", action="store_true", help="float32 products (exact=False)")
    args = ap.parse_args()

    from facecore.evaluation.idrate import id_rate_streaming
    from facecore.evaluation.metrics import id_rate

    exact = not args.fast
    t = time.perf_counter()
    q, labels, d = make_embeddings(args.identities, args.per_identity, args.distractors, args.dim, args.spread)
    emb_mb = (q.nbytes + d.nbytes) / 2**20
    print(f"embeddings: {len(q):,} queries ({args.identities:,} identities x {args.per_identity}), "
          f"{len(d):,} distractors, {args.dim}-d float32 = {emb_mb:,.0f} MiB (made in {time.perf_counter() - t:.0f} s)")
    base = rss_mb()
    print(f"resident before the run: {base:,.0f} MiB (peak so far {peak_mb():,.0f} MiB)", flush=True)

    r = id_rate_streaming(q, labels, d, FPRS, device=args.device, exact=exact)
    peak = peak_mb()
    print(f"\nstreaming ({'float64 exact' if exact else 'float32'}, {args.device}): {r['seconds']:.1f} s wall, "
          f"{r['n_negatives']:,} negatives, {r['n_positives']:,} positives, {r['passes']} pass(es)")
    print(f"peak memory above the resident size with embeddings: {peak - base:,.0f} MiB "
          f"(ru_maxrss {peak:,.0f} MiB; goal <= 4096 MiB); goal <= 180 s")
    floor = product_floor(q, r["n_negatives"], exact, args.device)
    print(f"bare matrix products of all pairs (extrapolated): {floor:.0f} s = {floor / r['seconds']:.0%} of the run")
    print(show(r))
    print(f"ROC-AUC {r['auc']:.6f} (+- {r['auc_max_error']:.1e})", flush=True)

    if args.compare_distractors:
        dc = d[:args.compare_distractors]
        t = time.perf_counter()
        ref = id_rate(q, labels, dc, FPRS)
        t_brute = time.perf_counter() - t
        s = id_rate_streaming(q, labels, dc, FPRS, device=args.device, exact=exact, progress=False)
        same = np.array_equal(ref["thresholds"], s["thresholds"]) and np.array_equal(ref["tprs"], s["tprs"])
        print(f"\nside by side on {len(q):,} x {len(dc):,} ({ref['n_negatives']:,} negatives): brute force "
              f"{t_brute:.1f} s, streaming {s['seconds']:.1f} s, ratio brute/streaming {t_brute / s['seconds']:.2f}; "
              f"identical thresholds and TPRs: {same}")
        if not same:
            print("brute:    ", show(ref), "\nstreaming:", show(s))
            sys.exit(1)


if __name__ == "__main__":
    main()
