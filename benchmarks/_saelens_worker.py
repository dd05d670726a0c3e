"""Run inside the SAELens venv (.venv-saelens): train SAELens's TopK SAE, or load one of ours.

Called by benchmarks/sae_vs_saelens.py through a subprocess; prints one JSON line on stdout.
  train:  python _saelens_worker.py train DATA.safetensors OUT_DIR --d-sae N --k K --batch B --steps S --lr LR
  load:   python _saelens_worker.py load DATA.safetensors OUT_DIR SAE_DIR [SAE_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch
from safetensors.torch import load_file, save_file


def train(args) -> dict:
    from sae_lens import LoggingConfig, SAETrainer, TopKTrainingSAE, TopKTrainingSAEConfig  # pyright: ignore[reportMissingImports] - its own venv
    from sae_lens.config import SAETrainerConfig  # pyright: ignore[reportMissingImports]

    torch.manual_seed(args.seed)
    acts = load_file(args.data)["acts"]
    d_in = acts.shape[1]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=args.d_sae, k=args.k, dtype="float32", device="cpu"))
    gen = torch.Generator().manual_seed(args.seed)

    def batches():
        while True:
            perm = torch.randperm(acts.shape[0], generator=gen)
            for s in range(0, acts.shape[0] - args.batch + 1, args.batch):
                yield acts[perm[s : s + args.batch]]

    cfg = SAETrainerConfig(
        total_training_samples=args.steps * args.batch,
        train_batch_size_samples=args.batch,
        lr=args.lr,
        lr_end=args.lr,  # constant (the trainer asserts lr_end is set)
        device="cpu",
        logger=LoggingConfig(log_to_wandb=False),
    )
    trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches())
    start = time.perf_counter()
    cpu0 = time.process_time()
    trainer.fit()
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    sae.save_inference_model(args.out)
    return {"seconds": seconds, "cpu_seconds": cpu, "samples": args.steps * args.batch, "out": args.out}


def load(args) -> dict:
    """Load SAE directories with SAELens; write each one's codes and reconstruction of the data."""
    from sae_lens import SAE  # pyright: ignore[reportMissingImports] - its own venv

    x = load_file(args.data)["acts"][: args.rows]
    os.makedirs(args.out_dir, exist_ok=True)
    classes = {}
    for d in args.sae_dirs:
        sae = SAE.load_from_disk(d, device="cpu")
        with torch.no_grad():
            x_hat, z = sae(x), sae.encode(x)
        name = os.path.basename(os.path.normpath(d))
        save_file({"x_hat": x_hat.contiguous(), "z": z.contiguous()}, os.path.join(args.out_dir, name + ".safetensors"))
        classes[name] = type(sae).__name__
    return {"classes": classes, "out_dir": args.out_dir}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("data")
    t.add_argument("out")
    t.add_argument("--d-sae", type=int, required=True)
    t.add_argument("--k", type=int, required=True)
    t.add_argument("--batch", type=int, default=4096)
    t.add_argument("--steps", type=int, required=True)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    ld = sub.add_parser("load")
    ld.add_argument("data")
    ld.add_argument("out_dir")
    ld.add_argument("sae_dirs", nargs="+")
    ld.add_argument("--rows", type=int, default=512)
    ld.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = train(args) if args.cmd == "train" else load(args)
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
