"""JAX (CPU, jit) reference for the Rust tape benchmark.

Run it on the same machine, in the same run, as the Rust tape benchmark. It
gives the Rust side a time to compare against and numbers to check its own
results against.
Setup: python3 -m pip install jax numpy

Data: the train images of DATA_DIR (IDX gzip), reshaped to (n, 784) and
normalized as (x/255 - 0.1307)/0.3081 in float64 (then cast to the working
dtype). Only the first int(0.8 n) samples are kept (the meta-training split).
Batch t is samples [128 t, 128 t + 128), with one-hot labels (10 classes).

Optimizee: p in R^7850, W = p[:7840].reshape(10, 784) (row-major), b = p[7840:],
    f_t(p) = -mean(sum(log_softmax(tanh(x_t W^T + b)) * y_t, axis=1))
(tanh comes before the softmax, as in the paper).
x0_i = 0.005 * (1 + sin(i)) for i = 0..7849 (in [0, 0.01], reproducible in any language), eta = 0.1.

Case a, loss_grad:        value_and_grad(f_0) at x0.
Case b, unroll_meta_grad: x_{t+1} = x_t - eta * grad f_t(x_t), t = 0..T-1, with
    grad f_t computed by jax.grad inside, so the meta-gradient keeps the
    second-order terms. L(eta, x0) = sum_{t=0}^{T-1} f_t(x_t). The script computes
    value_and_grad(L, argnums=(0, 1))(eta, x0).

Usage: python3 jax_tape_ref.py DATA_DIR [--case a|b|both] [--T 50] [--reps 20]
                               [--f64] [--threads N]
Each case is compiled and warmed up first and then timed --reps times: case a in
groups of 100 calls (per-call time reported), case b one call per rep. The
script prints one line per case (medians, values to 10 significant digits):
    jax_tape_ref case=loss_grad dtype=f32 seconds=... loss=... grad_norm=...
    jax_tape_ref case=unroll_meta_grad dtype=f32 T=50 seconds=... meta_loss=...
        d_eta=... d_x0_norm=... d_x0_sum=...
It also prints the compile + first-call time of each case to stderr.
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np

B = 128
D = 7850
GROUP_A = 100  # calls per timed group for case a


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data[4 + 4 * ndim:], dtype=np.uint8).reshape(dims)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--case", choices=["a", "b", "both"], default="both")
    ap.add_argument("--T", type=int, default=50)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    if args.threads:
        os.environ["XLA_FLAGS"] = (
            f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
            f"intra_op_parallelism_threads={args.threads}")
    import jax
    import jax.numpy as jnp
    if args.f64:
        jax.config.update("jax_enable_x64", True)
    dt = jnp.float64 if args.f64 else jnp.float32
    dname = "f64" if args.f64 else "f32"

    # Data: meta-training split, sequential minibatches of 128.
    imgs = read_idx(os.path.join(args.data_dir, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
    labs = read_idx(os.path.join(args.data_dir, "train-labels-idx1-ubyte.gz"))
    x = (imgs.astype(np.float64) / 255.0 - 0.1307) / 0.3081
    n_meta = int(0.8 * len(x))
    x, labs = x[:n_meta], labs[:n_meta]
    nb = n_meta // B
    if args.T > nb:
        sys.exit(f"--T {args.T} needs {args.T} batches but the split has only {nb}")
    bx = jnp.asarray(x[:nb * B].reshape(nb, B, 784), dtype=dt)
    by = jnp.asarray(np.eye(10)[labs[:nb * B]].reshape(nb, B, 10), dtype=dt)

    x0 = jnp.asarray(0.005 * (1.0 + np.sin(np.arange(D, dtype=np.float64))), dtype=dt)
    eta = jnp.asarray(0.1, dtype=dt)

    def f_loss(p, xb, yb):
        W = p[:7840].reshape(10, 784)
        b = p[7840:]
        o = jnp.tanh(xb @ W.T + b)
        return -jnp.mean(jnp.sum(jax.nn.log_softmax(o) * yb, axis=1))

    grad_f = jax.grad(f_loss)

    # Case a: value and gradient of f_0 at x0.
    loss_grad = jax.jit(jax.value_and_grad(f_loss))

    # Case b: meta-gradient of the unrolled gradient descent.
    # A Python loop (fully unrolled in the jitted program) was timed against
    # jax.lax.scan on this machine (2 cores, jax 0.10.2): scan ran faster in
    # both f32 and f64 and compiled in far less time, so this uses scan.
    def meta_loss(eta, p0, xs, ys):
        def body(p, batch):
            xb, yb = batch
            fv = f_loss(p, xb, yb)
            p = p - eta * grad_f(p, xb, yb)
            return p, fv

        _, fvs = jax.lax.scan(body, p0, (xs, ys))
        return jnp.sum(fvs)

    meta_grad = jax.jit(jax.value_and_grad(meta_loss, argnums=(0, 1)))

    def fmt(v):
        return f"{float(v):.10g}"

    if args.case in ("a", "both"):
        xb0, yb0 = bx[0], by[0]
        t0 = time.perf_counter()
        out = jax.block_until_ready(loss_grad(x0, xb0, yb0))
        print(f"# loss_grad compile+first call {time.perf_counter() - t0:.3f}s",
              file=sys.stderr, flush=True)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            for _ in range(GROUP_A):
                out = loss_grad(x0, xb0, yb0)
            jax.block_until_ready(out)
            times.append((time.perf_counter() - t0) / GROUP_A)
        val, g = out
        print(f"jax_tape_ref case=loss_grad dtype={dname} seconds={median(times):.6g} "
              f"loss={fmt(val)} grad_norm={fmt(jnp.linalg.norm(g))}", flush=True)

    if args.case in ("b", "both"):
        xs, ys = bx[:args.T], by[:args.T]
        t0 = time.perf_counter()
        out = jax.block_until_ready(meta_grad(eta, x0, xs, ys))
        print(f"# unroll_meta_grad compile+first call {time.perf_counter() - t0:.3f}s",
              file=sys.stderr, flush=True)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            out = jax.block_until_ready(meta_grad(eta, x0, xs, ys))
            times.append(time.perf_counter() - t0)
        val, (d_eta, d_x0) = out
        print(f"jax_tape_ref case=unroll_meta_grad dtype={dname} T={args.T} "
              f"seconds={median(times):.6g} meta_loss={fmt(val)} d_eta={fmt(d_eta)} "
              f"d_x0_norm={fmt(jnp.linalg.norm(d_x0))} d_x0_sum={fmt(jnp.sum(d_x0))}",
              flush=True)


if __name__ == "__main__":
    main()
