"""TopK SAE training speed and quality: tutorial_lib.sae against SAELens's SAETrainer, side by side.

Both train the same TopK SAE (same d_in, d_sae, k, batch, steps, constant learning rate) on the same
in-memory synthetic activations; SAELens runs in its own venv (.venv-saelens: it needs
TransformerLens < 4) through benchmarks/_saelens_worker.py, reading the data from a temporary
.safetensors file. Explained variance is measured here for both, on the same held-out rows, with
tutorial_lib.sae.evaluate (SAELens's SAE is read back through tutorial_lib.sae.load_sae). The run also
loads one of our saved SAEs with SAELens and checks its reconstructions match ours.

    python benchmarks/sae_vs_saelens.py             # all configurations (several minutes on 2 cores)
    python benchmarks/sae_vs_saelens.py --quick     # two small configurations
    python benchmarks/sae_vs_saelens.py --ours-only # no SAELens (no venv needed)
    python benchmarks/sae_vs_saelens.py --setup-venv  # create .venv-saelens first (pip, a few minutes)

Samples/s are wall-clock over the training loop only. Both sides use --threads torch threads (default
1: on a shared 2-core machine, 2 threads can be 10x slower than 1 when other processes compete).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TUTORIAL_PROGRESS", "0")  # bars would interleave with the printed table

from tutorial_lib import sae as S  # noqa: E402

VENV = ROOT / ".venv-saelens"
WORKER = Path(__file__).resolve().parent / "_saelens_worker.py"
SETUP_HELP = (
    "SAELens venv not found. Create it with\n"
    f"  python -m venv {VENV}\n"
    f"  {VENV}/bin/pip install torch==2.13.0   # first: the CPU wheel, so pip does not pull CUDA torch\n"
    f"  {VENV}/bin/pip install sae-lens\n"
    "or run this script with --setup-venv."
)


@dataclass(frozen=True)
class Config:
    d_in: int
    expansion: int
    k: int
    steps: int

    @property
    def d_sae(self) -> int:
        return self.d_in * self.expansion


FULL = [Config(128, 8, 8, 100), Config(128, 32, 32, 60), Config(512, 8, 16, 25), Config(512, 32, 32, 12)]
QUICK = [Config(128, 8, 8, 10), Config(512, 8, 16, 3)]


def venv_python(venv: Path = VENV) -> Path | None:
    """The venv's python if it exists and imports sae_lens, else None."""
    py = venv / "bin" / "python"
    if not py.exists():
        return None
    ok = subprocess.run([str(py), "-c", "import sae_lens"], capture_output=True).returncode == 0
    return py if ok else None


def setup_venv(venv: Path = VENV) -> Path:
    """Create the SAELens venv: CPU torch 2.13 first, then sae-lens (which pins TransformerLens < 4)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, "sae-lens"], check=True)
    py = venv_python(venv)
    if py is None:
        raise RuntimeError(f"sae_lens does not import in {venv}")
    return py


def run_worker(py: Path, args: list[str], threads: int) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(
        [str(py), str(WORKER), *args, "--threads", str(threads)], capture_output=True, text=True, env=env
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"SAELens worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def make_data(cfg: Config, batch: int, n_eval: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch of training rows (steps * batch) and held-out rows from one feature dictionary."""
    n_train = cfg.steps * batch
    acts, _ = S.synthetic_activations(n_train + n_eval, cfg.d_in, 4 * cfg.d_in, 8.0, seed=seed)
    return acts[:n_train].contiguous(), acts[n_train:].contiguous()


def train_ours(cfg: Config, train: torch.Tensor, batch: int, lr: float, seed: int) -> tuple[S.TopKSAE, dict]:
    sae = S.TopKSAE(cfg.d_in, cfg.d_sae, k=cfg.k, seed=seed)
    cpu0 = time.process_time()
    hist = S.train_sae(
        sae,
        train,
        steps=cfg.steps,
        batch_size=batch,
        lr=lr,
        warmup_frac=0.0,
        decay_frac=0.0,
        seed=seed,
        desc=f"ours d={cfg.d_in} n={cfg.d_sae}",
    )
    return sae, {"seconds": hist.seconds, "cpu_seconds": time.process_time() - cpu0, "samples": hist.n_samples}


def train_saelens(
    py: Path, tmp: Path, i: int, cfg: Config, train: torch.Tensor, batch: int, lr: float, seed: int, threads: int
) -> tuple[S.SAE, dict]:
    """Train SAELens's TopK SAE on `train` in its own venv; returns the SAE loaded back with ours, and its figures."""
    data_file = tmp / f"data{i}.safetensors"
    save_file({"acts": train}, str(data_file))
    out_dir = tmp / f"saelens{i}"
    args = ["train", str(data_file), str(out_dir), "--d-sae", str(cfg.d_sae), "--k", str(cfg.k),
            "--batch", str(batch), "--steps", str(cfg.steps), "--lr", str(lr), "--seed", str(seed)]  # fmt: skip
    figures = run_worker(py, args, threads)
    return S.load_sae(out_dir), figures


def saelens_reads_ours(py: Path, tmp: Path, ours: S.TopKSAE, held_out: torch.Tensor, threads: int) -> dict:
    """Save our SAE, load it with SAELens, compare its reconstructions with ours on held-out rows."""
    ours_dir = tmp / "ours0"
    S.save_sae(ours, ours_dir, hook_name="blocks.0.hook_resid_post")
    eval_file = tmp / "eval.safetensors"
    save_file({"acts": held_out[:512].contiguous()}, str(eval_file))
    got = run_worker(py, ["load", str(eval_file), str(tmp / "recon"), str(ours_dir)], threads)
    theirs_hat = load_file(str(tmp / "recon" / "ours0.safetensors"))["x_hat"]
    with torch.no_grad():
        mine = ours(held_out[:512])
    return {
        "saelens_load_max_abs_diff": float((theirs_hat - mine).abs().max()),
        "saelens_load_class": got["classes"]["ours0"],
    }


def run(
    configs: list[Config],
    *,
    ours_only: bool = False,
    batch: int = 4096,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int = 1,
    n_eval: int = 16384,
    verbose: bool = True,
) -> list[dict]:
    """Benchmark each configuration; returns one dict of figures per configuration."""
    torch.set_num_threads(threads)
    py = None if ours_only else venv_python()
    if not ours_only and py is None:
        raise SystemExit(SETUP_HELP)
    results = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, cfg in enumerate(configs):
            train, held_out = make_data(cfg, batch, n_eval, seed)
            row: dict = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "k": cfg.k, "steps": cfg.steps, "batch": batch}
            if py is not None:  # SAELens first, then ours, on the same data file
                theirs, sl = train_saelens(py, tmp, i, cfg, train, batch, lr, seed, threads)
                row["saelens_samples_per_s"] = sl["samples"] / sl["seconds"]
                row["saelens_ev"] = S.evaluate(theirs, held_out).explained_variance
            ours, fig = train_ours(cfg, train, batch, lr, seed)
            row["ours_samples_per_s"] = fig["samples"] / fig["seconds"]
            row["ours_ev"] = S.evaluate(ours, held_out).explained_variance
            row["ours_sparse_path"] = ours.uses_sparse(batch)
            if py is not None:
                row["speedup"] = row["ours_samples_per_s"] / row["saelens_samples_per_s"]
                if i == 0:  # SAELens reads our format: same reconstructions
                    row.update(saelens_reads_ours(py, tmp, ours, held_out, threads))
            results.append(row)
            if verbose:
                print(format_row(row), flush=True)
    return results


def format_row(r: dict) -> str:
    head = f"d_in={r['d_in']:4d} d_sae={r['d_sae']:6d} k={r['k']:3d} steps={r['steps']:4d} "
    ours = f"ours {r['ours_samples_per_s']:9.0f} samples/s EV {r['ours_ev']:.3f}"
    if "saelens_samples_per_s" not in r:
        return head + ours
    theirs = f"SAELens {r['saelens_samples_per_s']:9.0f} samples/s EV {r['saelens_ev']:.3f}"
    return head + f"| {theirs} | {ours} | speed x{r['speedup']:.2f}, EV diff {r['ours_ev'] - r['saelens_ev']:+.3f}"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="two small configurations, few steps")
    p.add_argument("--ours-only", action="store_true", help="skip SAELens")
    p.add_argument("--setup-venv", action="store_true", help=f"create {VENV} if sae_lens is not there")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.setup_venv and venv_python() is None:
        setup_venv()
    configs = QUICK if args.quick else FULL
    print(
        f"TopK SAE, batch {args.batch}, lr {args.lr} constant, {args.threads} torch thread(s), synthetic "
        f"activations (4 d_in features, L0 8); EV on {4096 if args.quick else 16384} held-out rows",
        flush=True,
    )
    n_eval = 4096 if args.quick else 16384
    results = run(
        configs,
        ours_only=args.ours_only,
        batch=args.batch,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        n_eval=n_eval,
    )
    if results and "saelens_load_max_abs_diff" in results[0]:
        r = results[0]
        print(
            f"SAELens loaded our saved SAE as {r['saelens_load_class']}: max |x_hat diff| = "
            f"{r['saelens_load_max_abs_diff']:.2e}"
        )
    return results


if __name__ == "__main__":
    main()
