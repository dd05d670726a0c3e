"""Checks for chapter 04, activation patching: `from tutorial_lib.checks import activation_patching as checks`.

The student writes simple loops (one `run_with_hooks` per patched cell); each check compares them
with the batched kernel in `tutorial_lib.patching` on a tiny random TransformerBridge. The references
live in the kernel (`tutorial_lib.patching`), each with its exercise id in its docstring."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from .. import patching as P
from ..patching import (
    attribution_patch_resid,
    get_act_name,
    mean_ablate_head,
    patch_position_hook,
    path_patch_to_receiver,
)
from .core import Mismatch, call_student, compare, exercise, random_model
from .guard import Mutable


def prompt_pair(seed: int, batch: int = 3, pos: int = 7, base: int = 100) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Clean and corrupted tokens that share a prefix (as real prompt pairs do), and answer tokens, for the
    patching and discovery checks (chapters 04 and 07; `base` keeps each chapter's draws its own)."""
    g = torch.Generator().manual_seed(base + seed)
    clean = torch.randint(0, 23, (batch, pos), generator=g)
    corrupted = clean.clone()
    corrupted[:, 2:] = torch.randint(0, 23, (batch, pos - 2), generator=g)
    correct = torch.randint(0, 23, (batch,), generator=g)
    wrong = (correct + 1 + torch.randint(0, 22, (batch,), generator=g)) % 23
    return clean, corrupted, correct, wrong


def logit_diff_metric(correct: Tensor, wrong: Tensor):
    """The checks' metric: logit difference of `correct` over `wrong` at the last position (chapters 04, 07)."""
    return lambda logits: P.logit_diff(logits, correct, wrong)


def _as_float(x):
    if isinstance(x, Tensor) and x.numel() == 1:
        return x.item()
    return x


# ---- 04.1 the metric


@exercise("04.1", "The logit difference", reference=P.logit_diff, function_name="logit_diff")
def check_logit_diff(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        logits = torch.randn(4, 5, 11, generator=g)
        correct, wrong = torch.randint(0, 11, (4,), generator=g), torch.randint(0, 11, (4,), generator=g)
        got = call_student(fn, logits, correct, wrong)
        want = P.logit_diff(logits, correct, wrong)
        if isinstance(got, Tensor) and got.shape == (4,):
            raise Mismatch(
                "you returned one value per prompt: the metric must be a single number, the mean over the batch."
            )
        if isinstance(got, Tensor) and got.numel() == 1:
            last = logits[:, -1]
            square = (last[:, correct] - last[:, wrong]).mean()  # the [batch, batch] slip, averaged
            if torch.allclose(got.float(), square, atol=1e-5) and not torch.allclose(got.float(), want, atol=1e-5):
                raise Mismatch(
                    "index the logits row by row: logits[torch.arange(batch), -1, correct] picks one "
                    "entry per prompt; logits[:, -1, correct] makes a [batch, batch] matrix."
                )
        compare(
            got,
            want,
            "the mean logit difference",
            atol=1e-5,
            hint="take the logits at the final position (logits[:, -1]), subtract the wrong token's logit from "
            "the correct token's for each prompt, then average over the batch.",
        )


# ---- 04.2 a patching hook


@exercise("04.2", "A patching hook", reference=patch_position_hook)
def check_patch_position_hook(fn):
    for seed, pos in [(0, 0), (1, 3), (2, 5)]:
        g = torch.Generator().manual_seed(seed)
        act, clean = torch.randn(3, 6, 8, generator=g), torch.randn(3, 6, 8, generator=g)
        before = act.clone()
        got = call_student(fn, Mutable(act), None, clean, pos)  # a hook may edit its activation in place
        want = patch_position_hook(before, None, clean, pos)
        if got is None:
            if torch.equal(act, want):
                return  # edited in place: TransformerLens accepts a hook that mutates and returns None
            raise Mismatch("your hook returned None and left the activation unchanged: return the patched activation.")
        compare(
            got,
            want,
            f"the activation with position {pos} patched",
            hint="replace activation[:, pos] (every prompt, one position, all of d_model) by clean_activation[:, pos] "
            "and leave every other position as it was.",
        )


# ---- 04.3 the residual-stream grid


@exercise(
    "04.3",
    "Patch the residual stream by layer and position",
    reference=P.patch_resid_pre,
    function_name="patch_resid_pre_grid",
)
def check_patch_resid_pre_grid(fn):
    model = random_model(0)
    for seed in range(2):
        clean, corrupted, correct, wrong = prompt_pair(seed)
        metric = logit_diff_metric(correct, wrong)
        got = call_student(fn, model, clean, corrupted, metric)
        want = P.patch_resid_pre(model, clean, corrupted, metric)
        if isinstance(got, Tensor) and got.shape == want.shape:
            base = metric(model(corrupted)).item()
            if torch.allclose(got.float(), torch.full_like(want, base), atol=1e-5):
                raise Mismatch(
                    "every cell equals the corrupted run's metric: the patch never took effect. Attach your "
                    "hook to f'blocks.{layer}.hook_resid_pre' and run the *corrupted* tokens with it."
                )
            clean_base = metric(model(clean)).item()
            if torch.allclose(got.float(), torch.full_like(want, clean_base), atol=1e-5):
                raise Mismatch(
                    "every cell equals the clean run's metric: run the corrupted tokens and patch in "
                    "activations from the clean cache, not the other way round."
                )
        compare(
            got,
            want,
            "the [layer, pos] grid of metric values",
            atol=1e-4,
            hint="for each layer and position, run the corrupted tokens with the clean resid_pre patched in at "
            "that (layer, position) and record metric(logits) as a float; the grid is [n_layers, n_pos], "
            "raw metric values (not normalised).",
        )


# ---- 04.4 head patching


@exercise("04.4", "Patch each head's output", reference=P.patch_head_out_all_pos, function_name="patch_head_grid")
def check_patch_head_grid(fn):
    model = random_model(0)
    for seed in range(2):
        clean, corrupted, correct, wrong = prompt_pair(seed)
        metric = logit_diff_metric(correct, wrong)
        got = call_student(fn, model, clean, corrupted, metric)
        want = P.patch_head_out_all_pos(model, clean, corrupted, metric)
        if isinstance(got, Tensor) and got.shape == want.shape and not torch.allclose(got.float(), want, atol=1e-4):
            # The commonest slip: indexing the head axis of hook_z [batch, pos, head, d_head] as dimension 1.
            _, clean_cache = model.run_with_cache(clean)
            wrong_axis = torch.zeros_like(want)
            for layer in range(want.shape[0]):
                for head in range(min(want.shape[1], corrupted.shape[1])):
                    name = get_act_name("z", layer)

                    def hook(z, hook, head=head, name=name, cache=clean_cache):  # noqa: ARG001 - TransformerLens calls hooks with hook=
                        z = z.clone()
                        z[:, head] = cache[name][:, head]
                        return z

                    wrong_axis[layer, head] = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])).item()
            if torch.allclose(got.float(), wrong_axis, atol=1e-4):
                raise Mismatch(
                    "you patched a position, not a head: hook_z is [batch, pos, head, d_head], so a head is "
                    "z[:, :, head], not z[:, head]."
                )
        compare(
            got,
            want,
            "the [layer, head] grid of metric values",
            atol=1e-4,
            hint="patch f'blocks.{layer}.attn.hook_z' at [:, :, head] (all positions) from the clean cache into "
            "the corrupted run, one head at a time.",
        )


# ---- 04.5 path patching


def _unfrozen_path(model, clean, corrupted, metric, senders, receiver, kind) -> float:
    """The slip: step 1 corrupts the senders but lets every other head recompute."""
    return P.path_patch_group(model, clean, corrupted, metric, senders, receivers=[receiver], receiver_input=kind,
                              freeze_others=False).item()  # fmt: skip


@exercise("04.5", "Path patching into one head's query, keys or values", reference=path_patch_to_receiver)
def check_path_patch_to_receiver(fn):
    model = random_model(0, n_layers=3)
    cases = [([(0, 1)], (2, 0), "q"), ([(0, 0), (1, 2)], (2, 3), "k"), ([(0, 2), (0, 3)], (1, 1), "v")]
    for seed, (senders, receiver, kind) in enumerate(cases):
        clean, corrupted, correct, wrong = prompt_pair(seed)
        metric = logit_diff_metric(correct, wrong)
        got = _as_float(call_student(fn, model, clean, corrupted, metric, senders, receiver, kind))
        want = path_patch_to_receiver(model, clean, corrupted, metric, senders, receiver, kind)
        if isinstance(got, float) and abs(got - want) > 1e-4:
            to_logits = P.path_patch_group(model, clean, corrupted, metric, senders).item()
            whole_layer = P.path_patch_group(model, clean, corrupted, metric, senders,
                                             receivers=[(receiver[0], h) for h in range(model.cfg.n_heads)],
                                             receiver_input=kind).item()  # fmt: skip
            if abs(got - to_logits) < 1e-4:
                raise Mismatch(
                    "that is the senders' path to the logits: you returned the metric of the first run. Keep "
                    "only the receiver's input from that run, then run the clean tokens again with just that "
                    "input patched."
                )
            if abs(got - whole_layer) < 1e-4:
                raise Mismatch(
                    f"you patched the {kind} of every head in layer {receiver[0]}: patch only the receiver "
                    f"head's slice, act[:, :, {receiver[1]}]."
                )
            if receiver[0] - max(sl for sl, _ in senders) > 1:
                unfrozen = _unfrozen_path(model, clean, corrupted, metric, senders, receiver, kind)
                if abs(got - unfrozen) < 1e-4:
                    raise Mismatch(
                        "in the first run, freeze every head that is not a sender at its clean output (hook "
                        "every layer's hook_z); otherwise the heads in between pass the senders' effect on "
                        "and you measure more than the direct path sender -> receiver."
                    )
        compare(
            got,
            want,
            f"the metric with the path senders -> L{receiver[0]}H{receiver[1]}.{kind} patched",
            atol=1e-4,
            hint="run 1 (clean tokens): every layer's hook_z set to the clean z, except the senders' heads, which get "
            f"the corrupted z; record f'blocks.{{layer}}.attn.hook_{kind}' of the receiver's layer. Run 2 (clean "
            "tokens): replace only the receiver head's slice [:, :, head] of that input by the recorded one, "
            "and return metric(logits) as a float.",
        )


# ---- 04.7 mean ablation


@exercise("04.7", "Mean-ablate a head", reference=mean_ablate_head)
def check_mean_ablate_head(fn):
    model = random_model(0)
    for seed, layer, head in [(0, 0, 2), (1, 1, 1)]:
        tokens, reference, correct, wrong = prompt_pair(seed, batch=4)
        metric = logit_diff_metric(correct, wrong)
        got = _as_float(call_student(fn, model, tokens, metric, layer, head, reference))
        want = P.ablate(model, tokens, metric, "head", "mean", reference_tokens=reference)
        if isinstance(got, float):
            zero = P.ablate(model, tokens, metric, "head", "zero")[layer, head].item()
            if abs(got - zero) < 1e-5 and abs(want[layer, head].item() - zero) > 1e-4:
                raise Mismatch(
                    "that is the zero-ablated value: replace the head's z by its mean over the reference "
                    "prompts, not by zeros."
                )
            own = P.ablate(model, tokens, metric, "head", "mean")[layer, head].item()
            if abs(got - own) < 1e-5 and abs(want[layer, head].item() - own) > 1e-4:
                raise Mismatch(
                    "you averaged over `tokens` itself: take the mean of z over `reference_tokens` (run them "
                    "with run_with_cache first)."
                )
            allpos = _mean_all_positions(model, tokens, metric, layer, head, reference)
            if abs(got - allpos) < 1e-5 and abs(want[layer, head].item() - allpos) > 1e-4:
                raise Mismatch(
                    "you averaged over positions too: average over the batch only (dim 0), keeping one "
                    "mean per position, z_ref.mean(0, keepdim=True)."
                )
        compare(
            got,
            float(want[layer, head]),
            f"the metric with L{layer}H{head} mean-ablated",
            atol=1e-4,
            hint="replace z[:, :, head] at f'blocks.{layer}.attn.hook_z' by reference_z[:, :, head].mean(0) "
            "(the mean over reference prompts, per position) and return metric(logits) as a float.",
        )


def _mean_all_positions(model, tokens, metric, layer, head, reference) -> float:
    name = get_act_name("z", layer)
    _, cache = model.run_with_cache(reference)
    mean = cache[name][:, :, head].mean(dim=(0, 1))

    def hook(z, hook):  # noqa: ARG001 - TransformerLens calls hooks with hook=
        z = z.clone()
        z[:, :, head] = mean
        return z

    return metric(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])).item()


# ---- 04.6 attribution patching


@exercise("04.6", "Attribution patching of the residual stream", reference=attribution_patch_resid)
def check_attribution_patch_resid(fn):
    model = random_model(0)
    for seed in range(2):
        clean, corrupted, correct, wrong = prompt_pair(seed)
        metric = logit_diff_metric(correct, wrong)
        got = call_student(fn, model, clean, corrupted, metric)
        want = attribution_patch_resid(model, clean, corrupted, metric)
        if isinstance(got, Tensor) and got.shape == want.shape and torch.isfinite(got).all():
            if torch.allclose(got.float(), -want, atol=1e-4) and want.abs().max() > 1e-4:
                raise Mismatch(
                    "your estimate has the wrong sign: multiply the gradient by (clean - corrupted), the "
                    "change a patch makes to the corrupted run."
                )
        compare(
            got,
            want,
            "the attribution estimate [layer, pos]",
            atol=1e-4,
            rtol=1e-3,
            hint="run the corrupted tokens with gradients, take d metric / d resid_pre at every layer (keep the "
            "activations with hooks and call torch.autograd.grad), multiply by (clean resid_pre - corrupted "
            "resid_pre) and sum over the batch and d_model, keeping [layer, pos].",
        )


# ---- 04.8 (open) a small set of heads that restores the answer

OPEN_TARGET, OPEN_MAX_HEADS = 0.8, 3


@functools.lru_cache(maxsize=1)
def _ioi_model():
    """The shipped ioi-3l: the open exercise's property is measured on the organism the chapter studies."""
    from .. import organisms

    return organisms.load("ioi-3l").eval()


def _ioi_case(seed: int):
    """ioi-3l and an 'abc' IOI pair of a seed the notebook does not use: tokens, metric, clean and corrupted values."""
    from .. import tasks

    model = _ioi_model()
    batch = tasks.ioi(batch=40, seed=seed, corruption="abc")
    clean, corrupted = batch.tokens, model.to_tokens(batch.corrupt_prompts)
    metric = logit_diff_metric(torch.tensor([model.to_single_token(a) for a in batch.answers]),
                     torch.tensor([model.to_single_token(a) for a in batch.wrong_answers]))  # fmt: skip
    with torch.no_grad():
        return model, clean, corrupted, metric, metric(model(clean)).item(), metric(model(corrupted)).item()


def _head_rows(got, model) -> list[tuple[int, int]]:
    """The student's answer as (layer, head) pairs, or a Mismatch that says what is wrong with its form."""
    if not isinstance(got, Tensor) or got.dtype not in (torch.int64, torch.int32) or got.ndim != 2 or got.shape[1] != 2:
        raise Mismatch(
            f"return an integer tensor [k, 2] with one row (layer, head) per chosen head; got {_describe_answer(got)}."
        )
    heads = [tuple(int(x) for x in row) for row in got.tolist()]
    if not 1 <= len(heads) <= OPEN_MAX_HEADS:
        raise Mismatch(f"choose between 1 and {OPEN_MAX_HEADS} heads; you returned {len(heads)}.")
    bad = [h for h in heads if not (0 <= h[0] < model.cfg.n_layers and 0 <= h[1] < model.cfg.n_heads)]
    if bad or len(set(heads)) != len(heads):
        raise Mismatch(f"every row must be a distinct head of the model (layers 0-{model.cfg.n_layers - 1}, heads "
                       f"0-{model.cfg.n_heads - 1}); got {heads}.")  # fmt: skip
    return heads  # pyright: ignore[reportReturnType]


def _describe_answer(got) -> str:
    if isinstance(got, Tensor):
        return f"a {got.dtype} tensor of shape {tuple(got.shape)}"
    return f"a {type(got).__name__}"


@exercise("04.8", "A small set of heads that restores the answer (open)", reference=P.greedy_head_set,
          function_name="find_head_set")  # fmt: skip
def check_find_head_set(fn):
    """A measured property, not equality: the heads the student's search returns on ioi-3l (prompts of a seed the
    notebook does not use), patched together, recover at least OPEN_TARGET of the logit difference."""
    model, clean, corrupted, metric, clean_v, corrupted_v = _ioi_case(seed=11)
    heads = _head_rows(call_student(fn, model, clean, corrupted, metric, OPEN_MAX_HEADS), model)
    value = P.patch_head_group(model, clean, corrupted, metric, heads).item()
    recovered = (value - corrupted_v) / (clean_v - corrupted_v)
    if not recovered >= OPEN_TARGET:
        names = ", ".join(f"L{layer}H{h}" for layer, h in heads)
        raise Mismatch(
            f"patched together, {names} recover {recovered:.2f} of the logit difference; the target is "
            f"{OPEN_TARGET}. Score each candidate set with every chosen head patched at once (a group), not one "
            "head at a time: heads that need each other look small alone."
        )
