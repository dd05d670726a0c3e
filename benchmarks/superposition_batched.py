"""Training N toy models as one batched model versus a Python loop over the same N models.

Both sides run the same kernel (tutorial_lib.superposition.ToyModel), the same initial
weights, the same batches and Adam; the loop trains N single-instance models one after the
other. Prints the wall time of each side, the speedup and the speedup divided by N
(the goal: at least 0.5 x N for N >= 16), and checks that both end at the same weights.

    python benchmarks/superposition_batched.py            # N = 8, 32, 128
    python benchmarks/superposition_batched.py --quick    # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import time

import torch

from tutorial_lib import superposition as sp


def train_batched(W0: torch.Tensor, batches: torch.Tensor, imp: torch.Tensor, lr: float) -> torch.Tensor:
    n_inst, n_feat, n_hidden = W0.shape
    model = sp.ToyModel(n_feat, n_hidden, n_inst, 1.0, imp, device=W0.device)
    with torch.no_grad():
        model.W.copy_(W0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for x in batches:
        opt.zero_grad(set_to_none=True)
        model.loss(x).sum().backward()
        opt.step()
    return model.W.detach()


def train_loop(W0: torch.Tensor, batches: torch.Tensor, imp: torch.Tensor, lr: float) -> torch.Tensor:
    n_inst, n_feat, n_hidden = W0.shape
    out = []
    for i in range(n_inst):
        model = sp.ToyModel(n_feat, n_hidden, 1, 1.0, imp, device=W0.device)
        with torch.no_grad():
            model.W.copy_(W0[i : i + 1])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        for x in batches[:, :, i : i + 1]:
            opt.zero_grad(set_to_none=True)
            model.loss(x).sum().backward()
            opt.step()
        out.append(model.W.detach())
    return torch.cat(out)


def timed(fn, *args) -> tuple[float, float, torch.Tensor]:
    """(CPU seconds of this process, wall seconds, result). With one thread the CPU time is what the run
    costs on an idle machine; on a shared machine the wall time also counts other programs' turns."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn(*args)
    if result.is_cuda:
        torch.cuda.synchronize()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 4, 16 and 10 steps")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--features", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: small models run best single-threaded)"
    )
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    ns = (4, 16) if args.quick else (8, 32, 128)
    steps = 10 if args.quick else args.steps
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    imp = 0.9 ** torch.arange(args.features, dtype=torch.float32, device=device)

    print(
        f"toy model {args.features} features -> {args.hidden} hidden, {steps} Adam steps, batch {args.batch}, "
        f"device {device.type}, {torch.get_num_threads()} thread(s)"
    )
    clock = "wall" if device.type != "cpu" else "CPU"
    print(
        f"times are {clock} seconds"
        + (" (process time: robust to other programs on a shared machine)" if clock == "CPU" else "")
    )
    print(
        f"{'N':>5} {'batched s':>10} {'loop s':>9} {'speedup':>8} {'speedup/N':>10} {'goal':>6} {'wall speedup':>13}  check"
    )
    for n in ns:
        g = torch.Generator(device=device).manual_seed(n)
        W0 = 0.5 * torch.randn(n, args.features, args.hidden, generator=g, device=device)
        batches = torch.stack(
            [sp.generate_batch(args.batch, 0.05, args.features, n, generator=g) for _ in range(steps)]
        )
        train_batched(W0, batches[:2], imp, 1e-2)  # warm-up: allocator and first-call costs
        cpu_b, wall_b, W_batched = timed(train_batched, W0, batches, imp, 1e-2)
        cpu_l, wall_l, W_loop = timed(train_loop, W0, batches, imp, 1e-2)
        err = (W_batched - W_loop).abs().max().item()
        t_batched, t_loop = (cpu_b, cpu_l) if clock == "CPU" else (wall_b, wall_l)
        speedup = t_loop / t_batched
        goal = "met" if speedup >= 0.5 * n else ("n/a" if n < 16 else "MISS")
        check = "same result" if err < 1e-4 else f"DIFFERENT (max |dW| = {err:.2g})"
        print(
            f"{n:>5} {t_batched:>10.3f} {t_loop:>9.3f} {speedup:>7.1f}x {speedup / n:>10.2f} {goal:>6} {wall_l / wall_b:>12.1f}x  {check}"
        )


if __name__ == "__main__":
    main()
