# pyright: reportArgumentType=false, reportCallIssue=false
# (the sweep passes wrong types on purpose)
"""A table-driven sweep of bad inputs over the public API of the kernels and the base layer (issue 17).

Each case calls one public function with one bad input and is classified: "clear" (TutorialInputError,
or a ValueError/TypeError whose message names the argument), "raw" (any other exception), "silent"
(it returned a value) or "hang" (over the per-case time limit). The sweep asserts 0 silent, 0 hang and
at least 95 % clear, prints the figures, and checks that every public function has a case: a new
public function needs a row here (or a reason in NO_CASE)."""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import random
import re
import signal
import threading
from collections import Counter

import torch

from tests.patching_support import make_model
from tutorial_lib import (
    attention,
    attribution_graph,
    explain,
    forward_pass,
    hooks,
    open_problems,
    patching,
    probing,
    sae,
    superposition,
    tasks,
    training,
)
from tutorial_lib.validation import TutorialInputError

MODULES = [
    "hooks",
    "forward_pass",
    "patching",
    "probing",
    "open_problems",
    "attention",
    "sae",
    "superposition",
    "tasks",
    "training",
    "explain",
    "attribution_graph",
]
TIMEOUT_S = 20
NAN = float("nan")
META = torch.device("meta")

# Public names without a bad-input case, and why.
NO_CASE = {
    # result containers: plain dataclasses filled by the functions above, never built by a student
    "probing.ControlResult", "probing.InterventionResult", "probing.ProbeResult", "probing.SteeringResult",
    "probing.SweepResult", "sae.LossOutput", "sae.SAEEval", "sae.TrainHistory", "attention.AblationLosses",
    "attention.Transition", "attention.PhaseSummary", "tasks.BracketBatch", "tasks.FactBatch", "tasks.IOIBatch", "tasks.RepeatedSegments",
    "probing.DiffMeansProbe", "probing.LogisticProbe", "probing.RidgeProbe",
    # the progress bar re-exported by training (tested in tests/test_progress.py)
    "training.progress",
    "sae.FrontierPoint", "sae.Split", "sae.LabelLatent", "open_problems.ToySAEs",  # result containers
    "explain.LabelTable", "explain.Explanation", "explain.Hierarchy",  # result containers
    "attribution_graph.AttributionGraph",  # result container
    # chapter 08's graph kernels before attention_effects: their bad inputs are tested in
    # tests/test_attribution_graph_{graph,pruning,validation}.py, not yet swept here
    "attribution_graph.ablate_latents", "attribution_graph.attribution_graph", "attribution_graph.circuit_latents",
    "attribution_graph.clean_state", "attribution_graph.closing_prompts", "attribution_graph.error_share",
    "attribution_graph.frozen_forward", "attribution_graph.influence", "attribution_graph.logit_edges",
    "attribution_graph.predicted_ablation_effects", "attribution_graph.prune", "attribution_graph.strongest_path",
    "attribution_graph.top_latents", "attribution_graph.validate_ablations",
}  # fmt: skip


# --------------------------------------------------------------------------- shared small inputs


@functools.cache
def model():
    """2 layers, 4 heads, d_model 32, d_vocab 40, n_ctx 16."""
    return make_model("cpu")


@functools.cache
def toks() -> torch.Tensor:
    return torch.randint(40, (2, 6), generator=torch.Generator().manual_seed(0))


@functools.cache
def logits() -> torch.Tensor:
    with torch.no_grad():
        return model()(toks())


@functools.cache
def cache():
    with torch.no_grad():
        return model().run_with_cache(toks())[1]


def metric(lg):
    return patching.logit_diff(lg, torch.tensor([1, 2]), torch.tensor([3, 4]))


def pattern() -> torch.Tensor:
    return torch.softmax(torch.randn(2, 3, 6, 6), -1)


@functools.cache
def dataset():
    gen = torch.Generator().manual_seed(0)
    return probing.make_dataset(torch.randn(40, 5, generator=gen), torch.randint(2, (40,), generator=gen))


def acts_with_nan() -> torch.Tensor:
    x = torch.randn(40, 5)
    x[3, 1] = NAN
    return x


@functools.cache
def small_sae():
    return sae.make_sae("relu", 8, 16)


def W3() -> torch.Tensor:
    return torch.randn(2, 5, 3)


def hook_name() -> str:
    return "blocks.0.hook_resid_post"


# --------------------------------------------------------------------------- the table: (name, label, call)


def _cases_base() -> list[tuple[str, str, object]]:
    m, t, lg = model, toks, logits
    return [
        ("hooks.per_token_loss", "float targets", lambda: hooks.per_token_loss(lg(), t().float())),
        ("hooks.per_token_loss", "out-of-vocab tokens", lambda: hooks.per_token_loss(lg(), t() + 100)),
        ("hooks.per_token_loss", "negative tokens", lambda: hooks.per_token_loss(lg(), t() - 1)),
        ("hooks.per_token_loss", "NaN logits", lambda: hooks.per_token_loss(lg().clone().fill_(NAN), t())),
        ("hooks.per_token_loss", "meta", lambda: hooks.per_token_loss(lg().to(META), t().to(META))),
        ("hooks.per_token_loss", "int logits", lambda: hooks.per_token_loss(lg().long(), t())),
        ("hooks.attention_pattern", "int q", lambda: hooks.attention_pattern(torch.ones(1, 3, 2, 4, dtype=torch.long),
                                                                              torch.ones(1, 3, 2, 4, dtype=torch.long))),
        ("hooks.attention_pattern", "3-D q", lambda: hooks.attention_pattern(torch.randn(3, 2, 4), torch.randn(3, 2, 4))),
        ("hooks.attention_pattern", "NaN q", lambda: hooks.attention_pattern(torch.full((1, 3, 2, 4), NAN),
                                                                              torch.randn(1, 3, 2, 4))),
        ("hooks.attention_pattern", "k heads do not divide q's", lambda: hooks.attention_pattern(
            torch.randn(1, 3, 6, 4), torch.randn(1, 3, 4, 4))),
        ("hooks.repeat_kv", "uneven groups", lambda: hooks.repeat_kv(torch.randn(1, 3, 4, 4), 6)),
        ("hooks.repeat_kv", "3-D", lambda: hooks.repeat_kv(torch.randn(3, 4, 4), 8)),
        ("hooks.kv_head", "head out of range", lambda: hooks.kv_head(m(), 9)),
        ("hooks.attention_inputs", "not a cache", lambda: hooks.attention_inputs(torch.randn(2, 3), 0)),
        ("hooks.attention_inputs", "no q in the cache", lambda: hooks.attention_inputs({}, 0)),
        ("hooks.attention_inputs", "negative layer", lambda: hooks.attention_inputs(cache(), -1)),
        ("hooks.attention_by_offset", "negative offset", lambda: hooks.attention_by_offset(pattern(), -1)),
        ("hooks.attention_by_offset", "float offset", lambda: hooks.attention_by_offset(pattern(), 1.5)),
        ("hooks.attention_by_offset", "non-square", lambda: hooks.attention_by_offset(torch.rand(2, 3, 6, 4), 1)),
        ("hooks.head_ablation_hook", "bad replacement", lambda: hooks.head_ablation_hook(0, "median")),
        ("hooks.head_ablation_hook", "negative head", lambda: hooks.head_ablation_hook(-1)),
        ("hooks.head_ablation_hook", "float head", lambda: hooks.head_ablation_hook(1.5)),
        ("hooks.head_ablation_hook", "2-D replacement", lambda: hooks.head_ablation_hook(0, torch.zeros(6, 4))),
        ("hooks.ablate_head_loss", "head out of range", lambda: hooks.ablate_head_loss(m(), t(), 0, 9)),
        ("hooks.ablate_head_loss", "negative layer", lambda: hooks.ablate_head_loss(m(), t(), -1, 0)),
        ("hooks.ablate_head_loss", "out-of-vocab", lambda: hooks.ablate_head_loss(m(), t() + 100, 0, 0)),
        ("hooks.ablate_head_loss", "float layer", lambda: hooks.ablate_head_loss(m(), t(), 0.5, 0)),
        ("hooks.norm_gain", "a tensor", lambda: hooks.norm_gain(torch.ones(3))),
        ("hooks.apply_final_norm", "not a cache", lambda: hooks.apply_final_norm(m(), {}, torch.randn(2, 32), (0,))),
        ("hooks.apply_final_norm", "wrong d_model", lambda: hooks.apply_final_norm(m(), cache(), torch.randn(2, 7),
                                                                                   (slice(None), -1))),
        ("hooks.logit_directions", "negative token", lambda: hooks.logit_directions(m(), torch.tensor([-1]))),
        ("hooks.logit_directions", "out-of-vocab", lambda: hooks.logit_directions(m(), torch.tensor([40]))),
        ("hooks.logit_directions", "float tokens", lambda: hooks.logit_directions(m(), torch.tensor([1.0]))),
        ("hooks.logit_directions", "wrong shape", lambda: hooks.logit_directions(m(), torch.tensor([1, 2]),
                                                                                 torch.tensor([1, 2, 3]))),
        ("hooks.component_logit_attribution", "negative token",
         lambda: hooks.component_logit_attribution(m(), cache(), torch.tensor([-1, 0]))),
        ("hooks.component_logit_attribution", "wrong batch",
         lambda: hooks.component_logit_attribution(m(), cache(), torch.tensor([1, 2, 3]))),
        ("hooks.component_logit_attribution", "float tokens",
         lambda: hooks.component_logit_attribution(m(), cache(), torch.tensor([1.0, 2.0]))),
        ("hooks.direct_logit_attribution", "negative answer", lambda: hooks.direct_logit_attribution(m(), cache(), -1)),
        ("hooks.direct_logit_attribution", "pos out of range",
         lambda: hooks.direct_logit_attribution(m(), cache(), 1, pos=9)),
        ("hooks.direct_logit_attribution", "out-of-vocab wrong",
         lambda: hooks.direct_logit_attribution(m(), cache(), 1, wrong=99)),
        ("hooks.logit_constant", "negative token", lambda: hooks.logit_constant(m(), torch.tensor([-1]))),
        ("hooks.logit_constant", "float token", lambda: hooks.logit_constant(m(), torch.tensor([1.0]))),
        ("training.per_token_loss", "float targets", lambda: training.per_token_loss(lg(), t().float())),
        ("training.lm_loss", "out-of-vocab", lambda: training.lm_loss(lg(), t() + 100)),
        ("training.lm_loss", "mask shape", lambda: training.lm_loss(lg(), t(), torch.ones(2, 3, dtype=torch.bool))),
        ("training.lm_loss", "float mask", lambda: training.lm_loss(lg(), t(), torch.ones(2, 6))),
        ("training.train_lm", "zero steps", lambda: training.train_lm(m(), lambda _s: t(), 0)),
        ("training.train_lm", "negative lr", lambda: training.train_lm(m(), lambda _s: t(), 1, lr=-1.0)),
        ("training.train_lm", "float batch", lambda: training.train_lm(m(), lambda _s: t().float(), 1)),
        ("training.train_lm", "NaN lr", lambda: training.train_lm(m(), lambda _s: t(), 1, lr=NAN)),
        ("training.train_lm", "negative weight_decay", lambda: training.train_lm(m(), lambda _s: t(), 1, weight_decay=-0.1)),
        ("training.train_lm", "zero every", lambda: training.train_lm(m(), lambda _s: t(), 1, every=0)),
    ]  # fmt: skip


def _cases_tasks() -> list[tuple[str, str, object]]:
    return [
        ("tasks.ioi", "zero batch", lambda: tasks.ioi(0)),
        ("tasks.ioi", "negative batch", lambda: tasks.ioi(-2)),
        ("tasks.ioi", "bad template", lambda: tasks.ioi(2, template=999)),
        ("tasks.ioi", "bad order", lambda: tasks.ioi(2, order="sideways")),
        ("tasks.brackets", "zero batch", lambda: tasks.brackets(0)),
        ("tasks.brackets", "negative depth", lambda: tasks.brackets(2, max_depth=-1)),
        ("tasks.brackets", "float batch", lambda: tasks.brackets(2.5)),
        ("tasks.facts", "zero batch", lambda: tasks.facts(0)),
        ("tasks.facts", "bad relation", lambda: tasks.facts(2, relation="nope")),
        ("tasks.corpus", "negative docs", lambda: tasks.corpus(-1)),
        ("tasks.corpus", "bad mix", lambda: tasks.corpus(2, mix={"nope": 1.0})),
        ("tasks.corpus_tokens", "zero n_ctx", lambda: tasks.corpus_tokens(2, 0)),
        ("tasks.corpus_tokens", "float batch", lambda: tasks.corpus_tokens(2.5, 8)),
        ("tasks.repeated_segments", "period too long", lambda: tasks.repeated_segments(2, 8, 20, 9)),
        ("tasks.repeated_segments", "zero period", lambda: tasks.repeated_segments(2, 8, 20, 0)),
        ("tasks.repeated_segments", "bos out of vocab", lambda: tasks.repeated_segments(2, 8, 20, 3, bos=20)),
        ("tasks.repeated_tokens", "zero half_len", lambda: tasks.repeated_tokens(2, 0, 20)),
        ("tasks.repeated_tokens", "bos out of vocab", lambda: tasks.repeated_tokens(2, 3, 20, bos=-1)),
        ("tasks.repeated_tokens", "d_vocab 1", lambda: tasks.repeated_tokens(2, 3, 1)),
        ("tasks.encode", "not a string", lambda: tasks.encode(123)),
        ("tasks.split_words", "not a string", lambda: tasks.split_words(None)),
        ("tasks.bracket_depth", "a string", lambda: tasks.bracket_depth("( )")),
        ("tasks.bracket_depth", "unbalanced", lambda: tasks.bracket_depth([")", "("])),
        ("tasks.filler", "not an rng", lambda: tasks.filler(3)),
        ("tasks.filler", "negative count", lambda: tasks.filler(random.Random(0), -1)),
        ("tasks.third_name_template", "no placeholder", lambda: tasks.third_name_template(3, "Ann")),
        ("tasks.third_name_template", "empty name", lambda: tasks.third_name_template("[A] and [B]", "")),
    ]  # fmt: skip


def _cases_patching() -> list[tuple[str, str, object]]:
    m, t, lg = model, toks, logits
    clean, corr = toks, lambda: (toks() + 1) % 40
    resid = lambda: torch.randn(2, 6, 32)  # noqa: E731
    return [
        ("patching.logit_diff", "negative token", lambda: patching.logit_diff(lg(), torch.tensor([-1, 0]), torch.tensor([1, 2]))),
        ("patching.logit_diff", "out-of-vocab", lambda: patching.logit_diff(lg(), torch.tensor([40, 0]), torch.tensor([1, 2]))),
        ("patching.logit_diff", "float tokens", lambda: patching.logit_diff(lg(), torch.tensor([1.0, 0]), torch.tensor([1, 2]))),
        ("patching.logit_diff", "wrong batch", lambda: patching.logit_diff(lg(), torch.tensor([1, 0, 3]), torch.tensor([1, 2, 3]))),
        ("patching.logit_diff", "position out of range",
         lambda: patching.logit_diff(lg(), torch.tensor([1, 0]), torch.tensor([1, 2]), torch.tensor([9, 0]))),
        ("patching.logit_diff", "2-D logits", lambda: patching.logit_diff(lg()[:, -1], torch.tensor([1, 0]), torch.tensor([1, 2]))),
        ("patching.normalise", "equal clean and corrupted", lambda: patching.normalise(0.5, 1.0, 1.0)),
        ("patching.normalise", "NaN", lambda: patching.normalise(NAN, 1.0, 0.0)),
        ("patching.normalise", "string", lambda: patching.normalise("a", 1.0, 0.0)),
        ("patching.forward_from_layer", "negative layer", lambda: patching.forward_from_layer(m(), resid(), -1)),
        ("patching.forward_from_layer", "layer too large", lambda: patching.forward_from_layer(m(), resid(), 5)),
        ("patching.forward_from_layer", "wrong d_model", lambda: patching.forward_from_layer(m(), torch.randn(2, 6, 7), 0)),
        ("patching.forward_from_layer", "int resid", lambda: patching.forward_from_layer(m(), t(), 0)),
        ("patching.forward_from_layer", "stop before start",
         lambda: patching.forward_from_layer(m(), resid(), 1, stop_at_layer=0)),
        ("patching.engine_for", "bad engine", lambda: patching.engine_for(m(), "turbo")),
        ("patching.patch_position_hook", "pos out of range",
         lambda: patching.patch_position_hook(resid(), None, resid(), 9)),
        ("patching.patch_position_hook", "shape mismatch",
         lambda: patching.patch_position_hook(resid(), None, torch.randn(2, 5, 32), 1)),
        ("patching.activation_patch", "bad grid", lambda: patching.activation_patch(m(), clean(), corr(), metric, "nope")),
        ("patching.activation_patch", "shape mismatch",
         lambda: patching.activation_patch(m(), clean(), corr()[:, :4], metric, "resid_pre")),
        ("patching.activation_patch", "out-of-vocab",
         lambda: patching.activation_patch(m(), clean() + 100, corr(), metric, "resid_pre")),
        ("patching.activation_patch", "layer out of range",
         lambda: patching.activation_patch(m(), clean(), corr(), metric, "resid_pre", layers=[0, 7])),
        ("patching.activation_patch", "repeated layers",
         lambda: patching.activation_patch(m(), clean(), corr(), metric, "resid_pre", layers=[0, 0])),
        ("patching.patch_resid_pre", "layers not a list",
         lambda: patching.patch_resid_pre(m(), clean(), corr(), metric, layers=1)),  # pyright: ignore[reportArgumentType]
        ("patching.patch_head_out_all_pos", "empty layers",
         lambda: patching.patch_head_out_all_pos(m(), clean(), corr(), metric, layers=[])),
        ("patching.patch_resid_pre", "float tokens", lambda: patching.patch_resid_pre(m(), clean().float(), corr(), metric)),
        ("patching.patch_attn_out", "1-D tokens", lambda: patching.patch_attn_out(m(), clean()[0], corr()[0], metric)),
        ("patching.patch_mlp_out", "out-of-vocab", lambda: patching.patch_mlp_out(m(), clean(), corr() + 100, metric)),
        ("patching.patch_heads", "head out of range",
         lambda: patching.patch_heads(m(), clean(), corr(), metric, [(0, 9)])),
        ("patching.patch_heads", "no heads", lambda: patching.patch_heads(m(), clean(), corr(), metric, [])),
        ("patching.patch_heads", "shape mismatch",
         lambda: patching.patch_heads(m(), clean(), corr()[:, :4], metric, [(0, 1)])),
        ("patching.patch_head_out_all_pos", "vector metric",
         lambda: patching.patch_head_out_all_pos(m(), clean(), corr(), lambda x: x[:, -1, 0])),
        ("patching.patch_head_out_by_pos", "shape mismatch",
         lambda: patching.patch_head_out_by_pos(m(), clean(), corr()[:1], metric)),
        ("patching.patch_head_pattern_all_pos", "negative tokens",
         lambda: patching.patch_head_pattern_all_pos(m(), clean() - 1, corr(), metric)),
        ("patching.patch_head_pattern_by_pos", "float tokens",
         lambda: patching.patch_head_pattern_by_pos(m(), clean(), corr().float(), metric)),
        ("patching.attribution_patch", "bad grid", lambda: patching.attribution_patch(m(), clean(), corr(), metric, "nope")),
        ("patching.attribution_patch", "shape mismatch",
         lambda: patching.attribution_patch(m(), clean(), corr()[:, :3], metric)),
        ("patching.attribution_patch_resid", "out-of-vocab",
         lambda: patching.attribution_patch_resid(m(), clean(), corr() + 100, metric)),
        ("patching.ablate", "bad method", lambda: patching.ablate(m(), t(), metric, method="median")),
        ("patching.ablate", "bad component", lambda: patching.ablate(m(), t(), metric, component="neuron")),
        ("patching.ablate", "out-of-vocab", lambda: patching.ablate(m(), t() + 100, metric)),
        ("patching.mean_ablate_head", "head out of range", lambda: patching.mean_ablate_head(m(), t(), metric, 0, 9, t())),
        ("patching.mean_ablate_head", "negative layer", lambda: patching.mean_ablate_head(m(), t(), metric, -1, 0, t())),
        ("patching.path_patch", "receiver out of range",
         lambda: patching.path_patch(m(), clean(), corr(), metric, receivers=[(9, 9)])),
        ("patching.path_patch", "bad receiver input",
         lambda: patching.path_patch(m(), clean(), corr(), metric, receivers=[(1, 0)], receiver_input="x")),
        ("patching.path_patch_groups", "no groups", lambda: patching.path_patch_groups(m(), clean(), corr(), metric, [])),
        ("patching.path_patch_groups", "a sender out of range",
         lambda: patching.path_patch_groups(m(), clean(), corr(), metric, [[(0, 1)], [(0, 9)]])),
        ("patching.path_patch_groups", "a group not a list",
         lambda: patching.path_patch_groups(m(), clean(), corr(), metric, (0, 1))),  # pyright: ignore[reportArgumentType]
        ("patching.path_patch_group", "sender out of range",
         lambda: patching.path_patch_group(m(), clean(), corr(), metric, senders=[(0, 9)])),
        ("patching.path_patch_group", "empty senders",
         lambda: patching.path_patch_group(m(), clean(), corr(), metric, senders=[])),
        ("patching.path_patch_to_receiver", "negative receiver",
         lambda: patching.path_patch_to_receiver(m(), clean(), corr(), metric, [(0, 0)], (-1, 0), "q")),
        ("patching.path_patch_to_receiver", "receiver before sender",
         lambda: patching.path_patch_to_receiver(m(), clean(), corr(), metric, [(1, 0)], (0, 0), "q")),
    ]  # fmt: skip


def _cases_probing() -> list[tuple[str, str, object]]:
    m, t = model, toks
    X, y = lambda: torch.randn(20, 5), lambda: torch.randint(2, (20,))
    return [
        ("probing.r2_score", "broadcast [n, 1] vs [n]", lambda: probing.r2_score(torch.randn(10, 1), torch.randn(10))),
        ("probing.r2_score", "length mismatch", lambda: probing.r2_score(torch.randn(10), torch.randn(9))),
        ("probing.r2_score", "NaN", lambda: probing.r2_score(torch.full((10,), NAN), torch.randn(10))),
        ("probing.r2_score", "empty", lambda: probing.r2_score(torch.randn(0), torch.randn(0))),
        ("probing.make_dataset", "NaN features", lambda: probing.make_dataset(acts_with_nan(), torch.randint(2, (40,)))),
        ("probing.make_dataset", "length mismatch", lambda: probing.make_dataset(torch.randn(40, 5), torch.randint(2, (39,)))),
        ("probing.make_dataset", "test_frac 1.5", lambda: probing.make_dataset(torch.randn(40, 5), torch.randint(2, (40,)), test_frac=1.5)),
        ("probing.make_dataset", "1-D acts", lambda: probing.make_dataset(torch.randn(40), torch.randint(2, (40,)))),
        ("probing.ProbeDataset", "index out of range",
         lambda: probing.ProbeDataset(torch.randn(4, 2), torch.zeros(4), torch.arange(4), torch.tensor([0, 9]), torch.tensor([1]))),
        ("probing.ProbeDataset", "label length", lambda: probing.ProbeDataset(torch.randn(4, 2), torch.zeros(3), torch.arange(4),
                                                                              torch.tensor([0]), torch.tensor([1]))),
        ("probing.train_logistic", "NaN features", lambda: probing.train_logistic(acts_with_nan(), torch.randint(2, (40,)))),
        ("probing.train_logistic", "float labels", lambda: probing.train_logistic(X(), y().float())),
        ("probing.train_logistic", "negative labels", lambda: probing.train_logistic(X(), y() - 1)),
        ("probing.train_logistic", "length mismatch", lambda: probing.train_logistic(X(), y()[:5])),
        ("probing.train_logistic_probe", "NaN features", lambda: probing.train_logistic_probe(acts_with_nan(), torch.randint(2, (40,)), 2)),
        ("probing.train_logistic_probe", "label >= n_classes", lambda: probing.train_logistic_probe(X(), y() + 1, 2)),
        ("probing.train_ridge", "NaN targets", lambda: probing.train_ridge(X(), torch.full((20,), NAN))),
        ("probing.train_ridge", "negative alpha", lambda: probing.train_ridge(X(), torch.randn(20), alpha=-1.0)),
        ("probing.train_ridge", "length mismatch", lambda: probing.train_ridge(X(), torch.randn(19))),
        ("probing.logistic_probe", "not a dataset", lambda: probing.logistic_probe(torch.randn(4, 2))),
        ("probing.logistic_probe", "negative l2", lambda: probing.logistic_probe(dataset(), l2=-1.0)),
        ("probing.ridge_probe", "NaN alpha", lambda: probing.ridge_probe(dataset(), alpha=NAN)),
        ("probing.diff_of_means_probe", "not a dataset", lambda: probing.diff_of_means_probe("ds")),
        ("probing.run_probe", "bad probe", lambda: probing.run_probe(dataset(), "svm")),
        ("probing.diff_of_means", "class absent", lambda: probing.diff_of_means(X(), y(), positive=5)),
        ("probing.diff_of_means", "NaN features", lambda: probing.diff_of_means(acts_with_nan(), torch.randint(2, (40,)))),
        ("probing.diff_of_means", "length mismatch", lambda: probing.diff_of_means(X(), y()[:4])),
        ("probing.steering_vector", "length mismatch", lambda: probing.steering_vector(X(), y()[:4])),
        ("probing.steering_vector", "NaN", lambda: probing.steering_vector(acts_with_nan(), torch.randint(2, (40,)))),
        ("probing.control_labels", "length mismatch", lambda: probing.control_labels(torch.arange(5), torch.zeros(4))),
        ("probing.control_labels", "float ids", lambda: probing.control_labels(torch.arange(5.0), torch.zeros(5))),
        ("probing.control_task", "bad probe", lambda: probing.control_task(dataset(), "svm")),
        ("probing.control_task", "control ids length", lambda: probing.control_task(dataset(), control_ids=torch.arange(3))),
        ("probing.project_out", "wrong d", lambda: probing.project_out(torch.randn(4, 5), torch.randn(3))),
        ("probing.project_out", "zero direction", lambda: probing.project_out(torch.randn(4, 5), torch.zeros(5))),
        ("probing.project_out", "NaN direction", lambda: probing.project_out(torch.randn(4, 5), torch.full((5,), NAN))),
        ("probing.direction_hook", "bad mode", lambda: probing.direction_hook(torch.randn(5), "rotate", 1.0, "all")),
        ("probing.direction_hook", "2-D direction", lambda: probing.direction_hook(torch.randn(2, 5), "steer", 1.0, "all")),
        ("probing.direction_hook", "NaN alpha", lambda: probing.direction_hook(torch.randn(5), "steer", NAN, "all")),
        ("probing.position_mask", "position out of range", lambda: probing.position_mask(9, 2, 6, "cpu")),
        ("probing.position_mask", "bad name", lambda: probing.position_mask("middle", 2, 6, "cpu")),
        ("probing.labels_at", "mask shape", lambda: probing.labels_at(torch.zeros(2, 6), torch.ones(2, 5, dtype=torch.bool))),
        ("probing.labels_at", "int mask", lambda: probing.labels_at(torch.zeros(2, 6), torch.ones(2, 6, dtype=torch.long))),
        ("probing.rows_from_act", "mask shape", lambda: probing.rows_from_act(torch.randn(2, 6, 4), torch.ones(2, 5, dtype=torch.bool))),
        ("probing.rows_from_act", "2-D act", lambda: probing.rows_from_act(torch.randn(2, 6), torch.ones(2, 6, dtype=torch.bool))),
        ("probing.probe_rows", "mask shape",
         lambda: probing.probe_rows(torch.randn(2, 6, 4), torch.zeros(2, 6), torch.ones(2, 5, dtype=torch.bool))),
        ("probing.split_prompts", "one prompt", lambda: probing.split_prompts(1)),
        ("probing.split_prompts", "NaN test_frac", lambda: probing.split_prompts(10, test_frac=NAN)),
        ("probing.is_monotonic", "NaN", lambda: probing.is_monotonic([1.0, NAN, 3.0])),
        ("probing.is_monotonic", "2-D", lambda: probing.is_monotonic(torch.randn(2, 3))),
        ("probing.valid_hook_names", "not a model", lambda: probing.valid_hook_names("gpt2")),
        ("probing.collect_activations", "bad hook", lambda: probing.collect_activations(m(), t(), torch.zeros(2, 6), "nope")),
        ("probing.collect_activations", "labels shape",
         lambda: probing.collect_activations(m(), t(), torch.zeros(2, 5), hook_name())),
        ("probing.collect_activations", "out-of-vocab",
         lambda: probing.collect_activations(m(), t() + 100, torch.zeros(2, 6), hook_name())),
        ("probing.layer_sweep", "layer out of range", lambda: probing.layer_sweep(m(), t(), torch.zeros(2, 6), layers=[5])),
        ("probing.layer_sweep", "negative layer", lambda: probing.layer_sweep(m(), t(), torch.zeros(2, 6), layers=[-1])),
        ("probing.layer_sweep", "bad probe", lambda: probing.layer_sweep(m(), t(), torch.zeros(2, 6), probe="svm")),
        ("probing.intervene", "wrong d", lambda: probing.intervene(m(), t(), hook_name(), torch.randn(7), metric)),
        ("probing.intervene", "bad mode", lambda: probing.intervene(m(), t(), hook_name(), torch.randn(32), metric, mode="x")),
        ("probing.random_direction_control", "zero samples",
         lambda: probing.random_direction_control(m(), t(), hook_name(), torch.randn(32), metric, n_samples=0)),
        ("probing.random_direction_control", "wrong d",
         lambda: probing.random_direction_control(m(), t(), hook_name(), torch.randn(7), metric)),
        ("probing.steer", "target out of vocab",
         lambda: probing.steer(m(), t(), hook_name(), torch.randn(32), [0.0, 1.0], [99])),
        ("probing.steer", "negative target", lambda: probing.steer(m(), t(), hook_name(), torch.randn(32), [0.0, 1.0], [-1])),
        ("probing.steer", "wrong d", lambda: probing.steer(m(), t(), hook_name(), torch.randn(7), [0.0], [1])),
        ("probing.steered_logits", "wrong d", lambda: probing.steered_logits(m(), t(), hook_name(), torch.randn(7), 1.0)),
        ("probing.steered_logits", "NaN strength", lambda: probing.steered_logits(m(), t(), hook_name(), torch.randn(32), NAN)),
    ]  # fmt: skip


def _cases_open_problems() -> list[tuple[str, str, object]]:
    m, t, op = model, toks, open_problems
    means = lambda: op.component_means(model(), toks())  # noqa: E731
    ans, wr, end = torch.tensor([1, 2]), torch.tensor([3, 4]), torch.tensor([5, 5])
    return [
        ("open_problems.unit_counts", "missing key", lambda: op.unit_counts({"n_layers": 2})),
        ("open_problems.unit_counts", "negative layers", lambda: op.unit_counts({"n_layers": -2, "n_heads": 4, "d_mlp": 8})),
        ("open_problems.log_log_slope", "negative x", lambda: op.log_log_slope([-1.0, 2.0], [1.0, 2.0])),
        ("open_problems.log_log_slope", "zero y", lambda: op.log_log_slope([1.0, 2.0], [0.0, 2.0])),
        ("open_problems.log_log_slope", "equal x", lambda: op.log_log_slope([2.0, 2.0], [1.0, 2.0])),
        ("open_problems.median_seconds", "zero repeats", lambda: op.median_seconds(lambda: None, repeats=0)),
        ("open_problems.median_seconds", "not callable", lambda: op.median_seconds(3)),
        ("open_problems.count_flops", "not callable", lambda: op.count_flops(3)),
        ("open_problems.fraction_recovered", "clean equals ablated", lambda: op.fraction_recovered(1.0, 0.5, 1.0)),
        ("open_problems.fraction_recovered", "NaN", lambda: op.fraction_recovered(NAN, 0.5, 0.0)),
        ("open_problems.fraction_recovered", "shape mismatch",
         lambda: op.fraction_recovered(torch.ones(3), torch.ones(2, 1), torch.zeros(3))),
        ("open_problems.component_means", "out-of-vocab", lambda: op.component_means(m(), t() + 100)),
        ("open_problems.component_means", "float tokens", lambda: op.component_means(m(), t().float())),
        ("open_problems.circuit_hooks", "head out of range", lambda: op.circuit_hooks(m(), {(9, 9)}, means())),
        ("open_problems.circuit_hooks", "missing means", lambda: op.circuit_hooks(m(), {(0, 0)}, {})),
        ("open_problems.circuit_coverage", "head out of range",
         lambda: op.circuit_coverage(m(), t(), metric, {(9, 9)}, means())),
        ("open_problems.circuit_coverage", "negative head",
         lambda: op.circuit_coverage(m(), t(), metric, {(0, -1)}, means())),
        ("open_problems.circuit_coverage", "vector metric",
         lambda: op.circuit_coverage(m(), t(), lambda x: x[:, -1, 0], {(0, 0)}, means())),
        ("open_problems.circuit_coverage", "out-of-vocab",
         lambda: op.circuit_coverage(m(), t() + 100, metric, {(0, 0)}, means())),
        ("open_problems.max_cosines", "d mismatch", lambda: op.max_cosines(torch.randn(3, 4), torch.randn(5, 6))),
        ("open_problems.max_cosines", "1-D", lambda: op.max_cosines(torch.randn(4), torch.randn(5, 4))),
        ("open_problems.max_cosines", "empty W_b", lambda: op.max_cosines(torch.randn(3, 4), torch.randn(0, 4))),
        ("open_problems.max_cosines", "NaN", lambda: op.max_cosines(torch.full((3, 4), NAN), torch.randn(5, 4))),
        ("open_problems.direct_effect", "scale shape", lambda: op.direct_effect(torch.randn(2, 8), torch.ones(3, 1), torch.randn(2, 8))),
        ("open_problems.direct_effect", "zero scale", lambda: op.direct_effect(torch.randn(2, 8), torch.zeros(2, 1), torch.randn(2, 8))),
        ("open_problems.direct_effect", "direction shape",
         lambda: op.direct_effect(torch.randn(2, 8), torch.ones(2, 1), torch.randn(2, 7))),
        ("open_problems.direct_and_total_effects", "negative answer",
         lambda: op.direct_and_total_effects(m(), t(), torch.tensor([-1, 2]), wr, end, means())),
        ("open_problems.direct_and_total_effects", "end_pos out of range",
         lambda: op.direct_and_total_effects(m(), t(), ans, wr, torch.tensor([9, 9]), means())),
        ("open_problems.direct_and_total_effects", "wrong batch",
         lambda: op.direct_and_total_effects(m(), t(), ans[:1], wr, end, means())),
        ("open_problems.self_repair_fraction", "zero direct", lambda: op.self_repair_fraction(0.0, 1.0)),
        ("open_problems.self_repair_fraction", "NaN", lambda: op.self_repair_fraction(NAN, 1.0)),
        ("open_problems.mahalanobis", "negative ridge",
         lambda: op.mahalanobis(torch.randn(3, 2), torch.zeros(2), torch.eye(2), ridge=-2.0)),
        ("open_problems.mahalanobis", "singular cov",
         lambda: op.mahalanobis(torch.randn(3, 2), torch.zeros(2), torch.zeros(2, 2))),
        ("open_problems.mahalanobis", "NaN x", lambda: op.mahalanobis(torch.full((3, 2), NAN), torch.zeros(2), torch.eye(2))),
        ("open_problems.gaussian_stats", "one row", lambda: op.gaussian_stats(torch.randn(1, 3))),
        ("open_problems.gaussian_stats", "NaN", lambda: op.gaussian_stats(torch.full((4, 3), NAN))),
        ("open_problems.patch_subspace", "d mismatch",
         lambda: op.patch_subspace(torch.randn(2, 4), torch.randn(2, 4), torch.randn(1, 5))),
        ("open_problems.patch_subspace", "h_source shape",
         lambda: op.patch_subspace(torch.randn(2, 4), torch.randn(3, 4), torch.randn(1, 4))),
        ("open_problems.patch_subspace", "zero basis",
         lambda: op.patch_subspace(torch.randn(2, 4), torch.randn(2, 4), torch.zeros(1, 4))),
        ("open_problems.ranks", "NaN", lambda: op.ranks(torch.tensor([1.0, NAN, 0.0]))),
        ("open_problems.ranks", "2-D", lambda: op.ranks(torch.randn(2, 2))),
        ("open_problems.spearman", "NaN", lambda: op.spearman(torch.tensor([1.0, NAN, 0.0]), torch.randn(3))),
        ("open_problems.spearman", "length mismatch", lambda: op.spearman(torch.randn(3), torch.randn(4))),
        ("open_problems.steps_to_reach", "NaN target", lambda: op.steps_to_reach([0, 1], [2.0, 1.0], NAN)),
        ("open_problems.steps_to_reach", "decreasing steps", lambda: op.steps_to_reach([5, 1], [2.0, 1.0], 1.5)),
        ("open_problems.steps_to_reach", "length mismatch", lambda: op.steps_to_reach([0, 1, 2], [2.0, 1.0], 1.5)),
        ("open_problems.transformer_flops", "negative tokens", lambda: op.transformer_flops(1e6, -5.0)),
        ("open_problems.transformer_flops", "NaN params", lambda: op.transformer_flops(NAN, 5.0)),
    ]  # fmt: skip


def _cases_attention() -> list[tuple[str, str, object]]:
    m, t, lg, a = model, toks, logits, attention
    return [
        ("attention.repeat_masks", "period too long", lambda: a.repeat_masks(8, 9)),
        ("attention.repeat_masks", "zero period", lambda: a.repeat_masks(8, 0)),
        ("attention.repeat_masks", "negative seq_len", lambda: a.repeat_masks(-1, 2)),
        ("attention.stack_patterns", "not a cache", lambda: a.stack_patterns({})),
        ("attention.stack_patterns", "a tensor", lambda: a.stack_patterns(torch.randn(2, 3))),
        ("attention.attention_scores", "negative period", lambda: a.attention_scores(pattern(), -1)),
        ("attention.attention_scores", "3-D pattern", lambda: a.attention_scores(torch.rand(3, 6, 6), 2)),
        ("attention.induction_score", "period too long", lambda: a.induction_score(pattern(), 9)),
        ("attention.induction_score", "mask shape",
         lambda: a.induction_score(pattern(), 2, torch.ones(2, 5, dtype=torch.bool))),
        ("attention.duplicate_token_score", "zero period", lambda: a.duplicate_token_score(pattern(), 0)),
        ("attention.previous_token_score", "non-square", lambda: a.previous_token_score(torch.rand(2, 3, 6, 4))),
        ("attention.previous_token_score", "NaN", lambda: a.previous_token_score(torch.full((2, 3, 6, 6), NAN))),
        ("attention.current_token_score", "int mask",
         lambda: a.current_token_score(pattern(), torch.ones(2, 6, dtype=torch.long))),
        ("attention.current_token_score", "1-D pattern", lambda: a.current_token_score(torch.rand(6))),
        ("attention.target_score", "target out of range",
         lambda: a.target_score(pattern(), torch.full((2, 6), 9), torch.ones(2, 6, dtype=torch.bool))),
        ("attention.target_score", "negative target",
         lambda: a.target_score(pattern(), torch.full((2, 6), -1), torch.ones(2, 6, dtype=torch.bool))),
        ("attention.head_scores", "out-of-vocab", lambda: a.head_scores(m(), t() + 100, 2)),
        ("attention.head_scores", "period too long", lambda: a.head_scores(m(), t(), 9)),
        ("attention.token_losses", "out-of-vocab", lambda: a.token_losses(lg(), t() + 100)),
        ("attention.token_losses", "float tokens", lambda: a.token_losses(lg(), t().float())),
        ("attention.repeat_losses", "shape mismatch", lambda: a.repeat_losses(lg(), t()[:, :4], 2)),
        ("attention.repeat_losses", "zero period", lambda: a.repeat_losses(lg(), t(), 0)),
        ("attention.ablated_loss", "head out of range", lambda: a.ablated_loss(m(), t(), [(0, 9)], period=2)),
        ("attention.ablated_loss", "bad kind", lambda: a.ablated_loss(m(), t(), [(0, 0)], kind="median", period=2)),
        ("attention.ablation_losses", "bad kind", lambda: a.ablation_losses(m(), t(), kind="median", period=2)),
        ("attention.ablation_losses", "out-of-vocab", lambda: a.ablation_losses(m(), t() + 100, period=2)),
        ("attention.circuit_coverage", "head out of range", lambda: a.circuit_coverage(m(), t(), [(9, 9)], period=2)),
        ("attention.circuit_coverage", "negative head", lambda: a.circuit_coverage(m(), t(), [(0, -1)], period=2)),
        ("attention.circuit_weights", "not a model", lambda: a.circuit_weights("gpt2")),
        ("attention.qk_circuit", "layer out of range", lambda: a.qk_circuit(m(), 5)),
        ("attention.qk_circuit", "negative layer", lambda: a.qk_circuit(m(), -1)),
        ("attention.ov_circuit", "layer out of range", lambda: a.ov_circuit(m(), 5)),
        ("attention.full_qk_circuit", "negative layer", lambda: a.full_qk_circuit(m(), -1)),
        ("attention.full_ov_circuit", "layer out of range", lambda: a.full_ov_circuit(m(), 5)),
        ("attention.ov_copying", "head out of range", lambda: a.ov_copying(m(), 0, 9)),
        ("attention.ov_copying", "negative layer", lambda: a.ov_copying(m(), -1, 0)),
        ("attention.dense", "a list", lambda: a.dense([[1.0]])),
        ("attention.copying_score", "non-square", lambda: a.copying_score(torch.randn(4, 5))),
        ("attention.copying_score", "1-D", lambda: a.copying_score(torch.randn(4))),
        ("attention.composition_score", "inner mismatch", lambda: a.composition_score(torch.randn(4, 4), torch.randn(5, 5))),
        ("attention.composition_score", "NaN", lambda: a.composition_score(torch.full((4, 4), NAN), torch.randn(4, 4))),
        ("attention.composition_scores", "bad kind", lambda: a.composition_scores(m(), "x")),
        ("attention.composition_scores", "layer order", lambda: a.composition_scores(m(), "k", 1, 0)),
        ("attention.composition_scores", "layer out of range", lambda: a.composition_scores(m(), "k", 0, 5)),
        ("attention.k_composition_score", "d mismatch",
         lambda: a.k_composition_score(torch.randn(2, 4, 4), torch.randn(2, 5, 5))),
        ("attention.k_composition_score", "2-D", lambda: a.k_composition_score(torch.randn(4, 4), torch.randn(4, 4))),
        ("attention.composition_baseline", "zero d_head", lambda: a.composition_baseline(8, 0)),
        ("attention.previous_token_senders", "layer out of range", lambda: a.previous_token_senders(torch.rand(2, 4), 3)),
        ("attention.previous_token_senders", "1-D scores", lambda: a.previous_token_senders(torch.rand(4), 1)),
        ("attention.random_senders", "no candidate head", lambda: a.random_senders(torch.ones(2, 4), [(0, 1)])),
        ("attention.random_senders", "zero sets", lambda: a.random_senders(torch.rand(2, 4), [(0, 1)], n_sets=0)),
        ("attention.key_path_test", "sender after receiver",
         lambda: a.key_path_test(m(), t(), t(), [(1, 0)], [(0, 1)])),
        ("attention.key_path_test", "head out of range", lambda: a.key_path_test(m(), t(), t(), [(0, 9)], [(1, 0)])),
        ("attention.composition_baseline", "zero samples", lambda: a.composition_baseline(8, 2, n_samples=0)),
        ("attention.halfway_step", "length mismatch", lambda: a.halfway_step([0, 1, 2], [1.0, 2.0])),
        ("attention.halfway_step", "empty", lambda: a.halfway_step([], [])),
        ("attention.halfway_step", "NaN", lambda: a.halfway_step([0, 1, 2], [1.0, NAN, 2.0])),
        ("attention.halfway_step", "NaN steps", lambda: a.halfway_step([0, NAN, 2], [1.0, 1.5, 2.0])),
        ("attention.transition_steps", "missing keys", lambda: a.transition_steps({})),
        ("attention.transition_steps", "head out of range",
         lambda: a.transition_steps({"steps": torch.arange(3), "loss_repeated": torch.ones(3),
                                     "induction": torch.rand(3, 2, 4)}, head=(9, 9))),
        ("attention.InductionMonitor", "zero every", lambda: a.InductionMonitor(0, t())),
        ("attention.InductionMonitor", "float probe", lambda: a.InductionMonitor(5, t().float())),
        ("attention.direct_logit_attribution", "negative answer", lambda: a.direct_logit_attribution(m(), cache(), -1)),
    ]  # fmt: skip


def _cases_sae() -> list[tuple[str, str, object]]:
    s = small_sae
    x = lambda: torch.randn(4, 8)  # noqa: E731
    W_enc, b_enc, W_dec, b_dec = torch.randn(8, 16), torch.zeros(16), torch.randn(16, 8), torch.zeros(8)
    return [
        ("sae.SAE", "zero d_sae", lambda: sae.SAE(8, 0)),
        ("sae.SAE", "float d_in", lambda: sae.SAE(8.5, 16)),
        ("sae.ReLUSAE", "negative l1", lambda: sae.ReLUSAE(8, 16, l1_coeff=-1.0)),
        ("sae.TopKSAE", "k > d_sae", lambda: sae.TopKSAE(8, 16, k=17)),
        ("sae.TopKSAE", "zero k", lambda: sae.TopKSAE(8, 16, k=0)),
        ("sae.BatchTopKSAE", "k > d_sae", lambda: sae.BatchTopKSAE(8, 16, k=17)),
        ("sae.JumpReLUSAE", "negative bandwidth", lambda: sae.JumpReLUSAE(8, 16, bandwidth=-1.0)),
        ("sae.make_sae", "bad architecture", lambda: sae.make_sae("gated", 8, 16)),
        ("sae.make_sae", "negative d_in", lambda: sae.make_sae("relu", -8, 16)),
        ("sae.sae_forward", "d_in mismatch", lambda: sae.sae_forward(torch.randn(4, 7), W_enc, b_enc, W_dec, b_dec)),
        ("sae.sae_forward", "1-D x", lambda: sae.sae_forward(torch.randn(8), W_enc, b_enc, W_dec, b_dec)),
        ("sae.sae_forward", "b_enc shape", lambda: sae.sae_forward(x(), W_enc, torch.zeros(15), W_dec, b_dec)),
        ("sae.sae_loss", "shape mismatch", lambda: sae.sae_loss(x(), torch.randn(4, 7), torch.rand(4, 16), W_dec, 1.0)),
        ("sae.sae_loss", "NaN coeff", lambda: sae.sae_loss(x(), x(), torch.rand(4, 16), W_dec, NAN)),
        ("sae.decoder_weighted_l1", "d_sae mismatch", lambda: sae.decoder_weighted_l1(torch.rand(4, 15), W_dec)),
        ("sae.topk_activation", "k > d_sae", lambda: sae.topk_activation(torch.randn(4, 16), 17)),
        ("sae.topk_activation", "zero k", lambda: sae.topk_activation(torch.randn(4, 16), 0)),
        ("sae.topk_activation", "negative k", lambda: sae.topk_activation(torch.randn(4, 16), -1)),
        ("sae.topk_encode_sparse", "k > d_sae", lambda: sae.topk_encode_sparse(x(), W_enc, b_enc, 17)),
        ("sae.topk_encode_sparse", "d_in mismatch", lambda: sae.topk_encode_sparse(torch.randn(4, 7), W_enc, b_enc, 2)),
        ("sae.topk_decode_sparse", "index out of range",
         lambda: sae.topk_decode_sparse(torch.rand(4, 2), torch.full((4, 2), 16), W_dec)),
        ("sae.topk_decode_sparse", "negative index",
         lambda: sae.topk_decode_sparse(torch.rand(4, 2), torch.full((4, 2), -1), W_dec)),
        ("sae.topk_decode_sparse", "float index", lambda: sae.topk_decode_sparse(torch.rand(4, 2), torch.ones(4, 2), W_dec)),
        ("sae.gather_latents", "index out of range",
         lambda: sae.gather_latents(x(), W_enc, b_enc, torch.randn(4, 16), torch.full((4, 2), 16))),
        ("sae.gather_latents", "negative index",
         lambda: sae.gather_latents(x(), W_enc, b_enc, torch.randn(4, 16), torch.full((4, 2), -1))),
        ("sae.gather_latents", "pre shape",
         lambda: sae.gather_latents(x(), W_enc, b_enc, torch.randn(3, 16), torch.zeros(4, 2, dtype=torch.long))),
        ("sae.use_sparse_topk", "negative k", lambda: sae.use_sparse_topk(-1, 16)),
        ("sae.use_sparse_topk", "k > d_sae", lambda: sae.use_sparse_topk(17, 16)),
        ("sae.explained_variance", "shape mismatch", lambda: sae.explained_variance(x(), torch.randn(4, 7))),
        ("sae.explained_variance", "NaN", lambda: sae.explained_variance(x(), torch.full((4, 8), NAN))),
        ("sae.explained_variance", "broadcast", lambda: sae.explained_variance(x(), torch.randn(1, 8))),
        ("sae.l0_norm", "1-D", lambda: sae.l0_norm(torch.rand(16))),
        ("sae.l0_norm", "NaN", lambda: sae.l0_norm(torch.full((4, 16), NAN))),
        ("sae.feature_frequencies", "l0 > n", lambda: sae.feature_frequencies(4, 8.0)),
        ("sae.feature_frequencies", "zero features", lambda: sae.feature_frequencies(0, 1.0)),
        ("sae.feature_recovery", "d mismatch", lambda: sae.feature_recovery(torch.randn(16, 8), torch.randn(5, 7))),
        ("sae.feature_recovery", "NaN", lambda: sae.feature_recovery(torch.randn(16, 8), torch.full((5, 8), NAN))),
        ("sae.latent_label_correlation", "length mismatch", lambda: sae.latent_label_correlation(torch.rand(4, 16), torch.ones(3))),
        ("sae.latent_label_correlation", "NaN labels",
         lambda: sae.latent_label_correlation(torch.rand(4, 16), torch.tensor([1.0, NAN, 0.0, 1.0]))),
        ("sae.shared_latent_fraction", "d mismatch", lambda: sae.shared_latent_fraction(torch.randn(16, 8), torch.randn(16, 7))),
        ("sae.shared_latent_fraction", "threshold > 1", lambda: sae.shared_latent_fraction(torch.randn(16, 8), torch.randn(16, 8), 2.0)),
        ("sae.synthetic_activations", "zero samples", lambda: sae.synthetic_activations(0, 8, 16)),
        ("sae.synthetic_activations", "l0 > features", lambda: sae.synthetic_activations(10, 8, 16, l0=20.0)),
        ("sae.synthetic_activations", "negative noise", lambda: sae.synthetic_activations(10, 8, 16, l0=2.0, noise_std=-1.0)),
        ("sae.synthetic_activations", "NaN magnitude_std",
         lambda: sae.synthetic_activations(10, 8, 16, l0=2.0, magnitude_std=NAN)),
        ("sae.evaluate", "not an SAE", lambda: sae.evaluate(torch.nn.Linear(8, 8), torch.randn(4, 8))),
        ("sae.training_step", "not an SAE",
         lambda: sae.training_step("sae", torch.randn(4, 8), torch.optim.SGD(s().parameters(), lr=0.0))),
        ("sae.loss_recovered", "not a model", lambda: sae.loss_recovered("gpt2", s(), toks(), hook_name())),
        ("sae.evaluate", "d_in mismatch", lambda: sae.evaluate(s(), torch.randn(4, 7))),
        ("sae.evaluate", "NaN data", lambda: sae.evaluate(s(), torch.full((4, 8), NAN))),
        ("sae.train_sae", "d_in mismatch", lambda: sae.train_sae(s(), torch.randn(64, 7), steps=1, batch_size=8)),
        ("sae.train_sae", "NaN data", lambda: sae.train_sae(sae.make_sae("relu", 8, 16), torch.full((64, 8), NAN), steps=1, batch_size=8)),
        ("sae.train_sae", "zero steps", lambda: sae.train_sae(s(), torch.randn(64, 8), steps=0, batch_size=8)),
        ("sae.training_step", "d_in mismatch",
         lambda: sae.training_step(s(), torch.randn(4, 7), torch.optim.SGD(s().parameters(), lr=0.0))),
        ("sae.training_step", "NaN x",
         lambda: sae.training_step(s(), torch.full((4, 8), NAN), torch.optim.SGD(s().parameters(), lr=0.0))),
        ("sae.default_dead_window", "negative steps", lambda: sae.default_dead_window(-5)),
        ("sae.default_dead_window", "float steps", lambda: sae.default_dead_window(2.5)),
        ("sae.loss_recovered", "bad hook", lambda: sae.loss_recovered(model(), s(), toks(), "nope")),
        ("sae.loss_recovered", "d_in mismatch", lambda: sae.loss_recovered(model(), s(), toks(), hook_name())),
        ("sae.save_sae", "not an SAE", lambda: sae.save_sae("sae", "/tmp/x")),
        ("sae.load_sae", "missing dir", lambda: sae.load_sae("/nonexistent/sae")),
        ("sae.sae_forward", "meta x", lambda: sae.sae_forward(x().to(META), W_enc.to(META), b_enc.to(META),
                                                             W_dec.to(META), b_dec.to(META))),
    ]  # fmt: skip


def _cases_superposition() -> list[tuple[str, str, object]]:
    sp = superposition
    return [
        ("superposition.ToyModel", "n_hidden 0", lambda: sp.ToyModel(5, 0)),
        ("superposition.ToyModel", "probability 2", lambda: sp.ToyModel(5, 2, feature_probability=2.0)),
        ("superposition.ToyModel", "bad output", lambda: sp.ToyModel(5, 2, output="tanh")),
        ("superposition.ToyModel", "importance shape", lambda: sp.ToyModel(5, 2, importance=torch.ones(4))),
        ("superposition.generate_batch", "probability -1", lambda: sp.generate_batch(4, -1.0, 5)),
        ("superposition.generate_batch", "NaN probability", lambda: sp.generate_batch(4, NAN, 5)),
        ("superposition.generate_batch", "too many pairs", lambda: sp.generate_batch(4, 0.5, 5, correlated_pairs=3)),
        ("superposition.toy_model_forward", "feat mismatch",
         lambda: sp.toy_model_forward(W3(), torch.zeros(2, 5), torch.rand(4, 2, 6))),
        ("superposition.toy_model_forward", "bad output",
         lambda: sp.toy_model_forward(W3(), torch.zeros(2, 5), torch.rand(4, 2, 5), output="tanh")),
        ("superposition.toy_model_forward", "b shape",
         lambda: sp.toy_model_forward(W3(), torch.zeros(2, 4), torch.rand(4, 2, 5))),
        ("superposition.importance_weighted_loss", "shape mismatch",
         lambda: sp.importance_weighted_loss(torch.rand(4, 2, 5), torch.rand(4, 2, 6), torch.ones(5))),
        ("superposition.importance_weighted_loss", "importance shape",
         lambda: sp.importance_weighted_loss(torch.rand(4, 2, 5), torch.rand(4, 2, 5), torch.ones(4))),
        ("superposition.train", "zero steps", lambda: sp.train(sp.ToyModel(5, 2), steps=0)),
        ("superposition.train", "not a ToyModel", lambda: sp.train("model", steps=1)),
        ("superposition.gram", "2-D", lambda: sp.gram(torch.randn(5, 3))),
        ("superposition.features_represented", "2-D", lambda: sp.features_represented(torch.randn(5, 3))),
        ("superposition.features_represented", "NaN", lambda: sp.features_represented(torch.full((2, 5, 3), NAN))),
        ("superposition.interference", "2-D", lambda: sp.interference(torch.randn(5, 3))),
        ("superposition.dimensions_per_feature", "2-D", lambda: sp.dimensions_per_feature(torch.randn(5, 3))),
        ("superposition.dimensions_per_feature", "NaN", lambda: sp.dimensions_per_feature(torch.full((2, 5, 3), NAN))),
        ("superposition.feature_dimensionality", "2-D", lambda: sp.feature_dimensionality(torch.randn(5, 3))),
        ("superposition.neuron_feature_counts", "negative threshold", lambda: sp.neuron_feature_counts(W3(), -1.0)),
        ("superposition.neuron_feature_counts", "2-D", lambda: sp.neuron_feature_counts(torch.randn(5, 3))),
        ("superposition.feature_angles", "hidden 3", lambda: sp.feature_angles(W3())),
        ("superposition.adjacent_angle_gaps", "hidden 3", lambda: sp.adjacent_angle_gaps(torch.randn(5, 3))),
        ("superposition.adjacent_angle_gaps", "NaN", lambda: sp.adjacent_angle_gaps(torch.full((5, 2), NAN))),
        ("superposition.classify_two_feature_solution", "wrong shape",
         lambda: sp.classify_two_feature_solution(torch.randn(3, 3, 1))),
        ("superposition.classify_two_feature_solution", "NaN",
         lambda: sp.classify_two_feature_solution(torch.full((3, 2, 1), NAN))),
        ("superposition.classify_two_feature_solution", "NaN threshold",
         lambda: sp.classify_two_feature_solution(torch.randn(3, 2, 1), NAN)),
        ("superposition.trained_phase_diagram", "2-D rel",
         lambda: sp.trained_phase_diagram(torch.ones(2, 2), torch.tensor([0.1]), steps=1)),
        ("superposition.trained_phase_diagram", "zero runs",
         lambda: sp.trained_phase_diagram(torch.tensor([1.0]), torch.tensor([0.1]), runs=0, steps=1)),
        ("superposition.dense_baseline_loss", "probability 2", lambda: sp.dense_baseline_loss(torch.ones(5), 2, 2.0)),
        ("superposition.dense_baseline_loss", "zero hidden", lambda: sp.dense_baseline_loss(torch.ones(5), 0, 0.1)),
        ("superposition.packing_score", "b shape", lambda: sp.packing_score(torch.ones(5, 2), torch.ones(4), 0.1, torch.ones(5))),
        ("superposition.packing_score", "NaN W", lambda: sp.packing_score(torch.full((5, 2), NAN), torch.ones(5), 0.1, torch.ones(5))),
        ("superposition.pack_features", "zero runs", lambda: sp.pack_features(runs=0)),
        ("superposition.pack_features", "probability 2", lambda: sp.pack_features(feature_probability=2.0, steps=1)),
        ("superposition.two_feature_losses", "probability 0", lambda: sp.two_feature_losses(1.0, 0.0)),
        ("superposition.two_feature_losses", "probability 2", lambda: sp.two_feature_losses(1.0, 2.0)),
        ("superposition.two_feature_losses", "negative importance", lambda: sp.two_feature_losses(-1.0, 0.5)),
    ]  # fmt: skip


def rep() -> torch.Tensor:
    """[BOS, x, x]-shaped tokens (odd length) for the copy-head search."""
    return torch.randint(1, 40, (2, 7), generator=torch.Generator().manual_seed(0))


def _cases_added_2026_12() -> list[tuple[str, str, object]]:
    """Functions added in the 2026-12-05 stop: chapter 02 frontier, 05 survey/monitor, 06 experiments, 04 noise."""
    m, t = model, toks

    def pts():
        return sae.sweep_frontier(
            torch.randn(64, 8), torch.randn(32, 8), None, ks=(2,), l1_coeffs=(1.0,), steps=2, batch_size=16
        )

    return [
        ("hooks.mean_ablation_grid", "out-of-vocab", lambda: hooks.mean_ablation_grid(m(), t() + 100)),
        ("hooks.mean_ablation_grid", "not a model", lambda: hooks.mean_ablation_grid("model", t())),
        ("hooks.heads_carrying_logit_diff", "wrong batch",
         lambda: hooks.heads_carrying_logit_diff(m(), t(), torch.tensor([1, 2, 3]), torch.tensor([1, 2, 3]))),
        ("hooks.heads_carrying_logit_diff", "keep 2", lambda: hooks.heads_carrying_logit_diff(
            m(), t(), torch.tensor([1, 2]), torch.tensor([3, 4]), keep=2.0)),
        ("hooks.heads_carrying_logit_diff", "zero max_heads", lambda: hooks.heads_carrying_logit_diff(
            m(), t(), torch.tensor([1, 2]), torch.tensor([3, 4]), max_heads=0)),
        ("hooks.mean_logit_diff_ablated", "head out of range", lambda: hooks.mean_logit_diff_ablated(
            m(), t(), torch.tensor([1, 2]), torch.tensor([3, 4]), [(0, 9)])),
        ("hooks.mean_logit_diff_ablated", "out-of-vocab answer", lambda: hooks.mean_logit_diff_ablated(
            m(), t(), torch.tensor([1, 99]), torch.tensor([3, 4]), [])),
        ("forward_pass.attention_layer", "wrong d_model", lambda: forward_pass.attention_layer(m(), torch.zeros(1, 3, 7), 0)),
        ("forward_pass.attention_layer", "layer out of range",
         lambda: forward_pass.attention_layer(m(), torch.zeros(1, 3, 32), 4)),
        ("forward_pass.attention_layer", "NaN input",
         lambda: forward_pass.attention_layer(m(), torch.full((1, 3, 32), NAN), 0)),
        ("forward_pass.layer_norm", "not a norm", lambda: forward_pass.layer_norm(torch.zeros(2, 4), "ln", 1e-5)),
        ("forward_pass.layer_norm", "negative eps", lambda: forward_pass.layer_norm(torch.zeros(2, 32), m().blocks[0].ln1, -1.0)),
        ("forward_pass.layer_norm", "NaN x", lambda: forward_pass.layer_norm(torch.full((2, 32), NAN), m().blocks[0].ln1, 1e-5)),
        ("forward_pass.transformer_block", "2-D input", lambda: forward_pass.transformer_block(m(), torch.zeros(3, 32), 0)),
        ("forward_pass.transformer_block", "not a model",
         lambda: forward_pass.transformer_block("model", torch.zeros(1, 3, 32), 0)),
        ("probing.mlp_probe_accuracy", "float labels", lambda: probing.mlp_probe_accuracy(
            torch.randn(8, 3), torch.rand(8), torch.randn(4, 3), torch.zeros(4, dtype=torch.long))),
        ("probing.train_mlp_probe", "one class", lambda: probing.train_mlp_probe(
            torch.randn(8, 3), torch.zeros(8, dtype=torch.long), 1)),
        ("probing.variance_matched_directions", "zero direction",
         lambda: probing.variance_matched_directions(torch.randn(10, 3), torch.zeros(3))),
        ("probing.variance_matched_directions", "wrong width",
         lambda: probing.variance_matched_directions(torch.randn(10, 3), torch.ones(4))),
        ("probing.online_code_length", "fractions not ending at 1", lambda: probing.online_code_length(
            torch.randn(10, 2), torch.zeros(10, dtype=torch.long), 2, fractions=(0.5, 0.9))),
        ("probing.online_code_length", "NaN X", lambda: probing.online_code_length(
            torch.full((10, 2), NAN), torch.zeros(10, dtype=torch.long), 2)),
        ("probing.depth0_close_probability", "depth shape", lambda: probing.depth0_close_probability(
            m(), t(), torch.zeros(3, 3), "blocks.0.hook_resid_post", torch.zeros(32), 1)),
        ("probing.find_steering_vector", "bad hook", lambda: probing.find_steering_vector(
            m(), t(), torch.zeros(2, 6), "blocks.9.nope")),
        ("attention.crossing_step", "length mismatch", lambda: attention.crossing_step([0, 1, 2], [1.0, 0.5])),
        ("attention.crossing_step", "fraction 2", lambda: attention.crossing_step([0, 1, 2], [1.0, 0.5, 0.1], fraction=2.0)),
        ("attention.crossing_step", "zero window", lambda: attention.crossing_step([0, 1, 2], [1.0, 0.5, 0.1], window=0)),
        ("attention.crossing_step", "NaN values", lambda: attention.crossing_step([0, 1, 2], [1.0, NAN, 0.1])),
        ("attention.find_copy_heads", "negative max_heads", lambda: attention.find_copy_heads(m(), rep(), max_heads=-1)),
        ("attention.find_copy_heads", "out-of-vocab", lambda: attention.find_copy_heads(m(), rep() + 100)),
        ("attention.icl_score", "1-D loss", lambda: attention.icl_score(torch.rand(6))),
        ("attention.icl_score", "NaN loss", lambda: attention.icl_score(torch.full((2, 60), NAN))),
        ("attention.icl_score", "too short", lambda: attention.icl_score(torch.rand(2, 3))),
        ("attention.induction_survey", "top 0", lambda: attention.induction_survey(m(), t(), top=0)),
        ("attention.induction_survey", "float tokens", lambda: attention.induction_survey(m(), t().float())),
        ("attention.probe_measures", "not a probe", lambda: attention.probe_measures(m(), "probe")),
        ("attention.seen_distance", "float tokens", lambda: attention.seen_distance(t().float())),
        ("attention.seen_distance", "1-D", lambda: attention.seen_distance(t()[0])),
        ("attention.stored_survey", "unknown name", lambda: attention.stored_survey("gpt-9")),
        ("attention.survey_probe", "not a model", lambda: attention.survey_probe("model")),
        ("open_problems.bootstrap_rank_correlation", "shape mismatch",
         lambda: open_problems.bootstrap_rank_correlation(torch.rand(5), torch.rand(4, 10))),
        ("open_problems.bootstrap_rank_correlation", "zero n_boot",
         lambda: open_problems.bootstrap_rank_correlation(torch.rand(5), torch.rand(5, 10), n_boot=0)),
        ("open_problems.bootstrap_rank_correlation", "NaN x",
         lambda: open_problems.bootstrap_rank_correlation(torch.full((5,), NAN), torch.rand(5, 10))),
        ("open_problems.find_circuit", "negative max_heads", lambda: open_problems.find_circuit(m(), t(), metric, {}, max_heads=-1)),
        ("open_problems.find_circuit", "means not a dict", lambda: open_problems.find_circuit(m(), t(), metric, "means")),
        ("open_problems.head_z_at", "layer out of range", lambda: open_problems.head_z_at(m(), t(), torch.tensor([1, 2]), 5)),
        ("open_problems.head_z_at", "positions wrong length", lambda: open_problems.head_z_at(m(), t(), torch.tensor([1, 2, 3]), 0)),
        ("open_problems.head_z_at", "position out of range", lambda: open_problems.head_z_at(m(), t(), torch.tensor([1, 9]), 0)),
        ("open_problems.random_transformer", "zero layers", lambda: open_problems.random_transformer(0, 16)),
        ("open_problems.random_transformer", "float d_model", lambda: open_problems.random_transformer(1, 16.5)),
        ("open_problems.replacement_distances", "negative ridge",
         lambda: open_problems.replacement_distances(m(), t(), t(), t(), 0, torch.tensor([0]), ridge=-1.0)),
        ("open_problems.replacement_distances", "layer out of range",
         lambda: open_problems.replacement_distances(m(), t(), t(), t(), 7, torch.tensor([0]))),
        ("open_problems.replacement_verdicts", "not a dict", lambda: open_problems.replacement_verdicts("dist")),
        ("open_problems.replacement_verdicts", "missing keys", lambda: open_problems.replacement_verdicts({})),
        ("open_problems.replacement_verdicts", "negative tolerance", lambda: open_problems.replacement_verdicts({}, -0.1)),
        ("patching.embedding_noise", "negative scale", lambda: patching.embedding_noise(m(), t(), torch.tensor([[1], [2]]), scale=-1.0)),
        ("patching.embedding_noise", "position out of range", lambda: patching.embedding_noise(m(), t(), torch.tensor([[1], [9]]))),
        ("patching.embedding_noise", "float positions", lambda: patching.embedding_noise(m(), t(), torch.tensor([[1.0], [2.0]]))),
        ("patching.greedy_head_set", "zero max_heads", lambda: patching.greedy_head_set(m(), t(), t(), metric, max_heads=0)),
        ("patching.greedy_head_set", "shape mismatch", lambda: patching.greedy_head_set(m(), t(), t()[:1], metric)),
        ("patching.noise_patch", "bad grid", lambda: patching.noise_patch(m(), t(), metric, torch.tensor([[1], [2]]), grid="heads!")),
        ("patching.noise_patch", "NaN scale", lambda: patching.noise_patch(m(), t(), metric, torch.tensor([[1], [2]]), scale=NAN)),
        ("patching.patch_head_group", "head out of range", lambda: patching.patch_head_group(m(), t(), t(), metric, [(0, 9)])),
        ("patching.patch_head_group", "layer out of range", lambda: patching.patch_head_group(m(), t(), t(), metric, [(5, 0)])),
        ("patching.patch_head_group", "not pairs", lambda: patching.patch_head_group(m(), t(), t(), metric, [0, 1])),
        ("sae.auroc", "length mismatch", lambda: sae.auroc(torch.rand(5), torch.tensor([0, 1, 0]))),
        ("sae.auroc", "one class", lambda: sae.auroc(torch.rand(3), torch.tensor([1, 1, 1]))),
        ("sae.auroc", "NaN scores", lambda: sae.auroc(torch.tensor([NAN, 0.1, 0.2]), torch.tensor([0, 1, 0]))),
        ("sae.ev_at_l0", "empty points", lambda: sae.ev_at_l0([], 5.0)),
        ("sae.ev_at_l0", "negative l0", lambda: sae.ev_at_l0(pts(), -1.0)),
        ("sae.matched_gaps", "zero n", lambda: sae.matched_gaps(pts(), n=0)),
        ("sae.smoothed", "zero width", lambda: sae.smoothed([1.0, 2.0], width=0)),
        ("sae.smoothed", "NaN values", lambda: sae.smoothed([1.0, NAN])),
        ("sae.steer_with_latent", "latent out of range",
         lambda: sae.steer_with_latent(m(), small_sae(), t(), hook_name(), 99, 1.0, torch.ones(2, 6, dtype=torch.bool), 1)),
        ("sae.steer_with_latent", "bad hook name",
         lambda: sae.steer_with_latent(m(), sae.make_sae("relu", 32, 16), t(), "blocks.9.nope", 0, 1.0, torch.ones(2, 6, dtype=torch.bool), 1)),
        ("sae.steer_with_latent", "token out of vocab",
         lambda: sae.steer_with_latent(m(), sae.make_sae("relu", 32, 16), t(), hook_name(), 0, 1.0, torch.ones(2, 6, dtype=torch.bool), 99)),
        ("sae.sweep_frontier", "zero steps", lambda: sae.sweep_frontier(torch.randn(8, 4), torch.randn(8, 4), None, steps=0)),
        ("sae.sweep_frontier", "width mismatch", lambda: sae.sweep_frontier(torch.randn(8, 4), torch.randn(8, 5), None, steps=1)),
        ("sae.seed_agreement", "zero steps", lambda: sae.seed_agreement(torch.randn(8, 4), 0)),
        ("sae.seed_agreement", "one seed", lambda: sae.seed_agreement(torch.randn(8, 4), 1, seeds=(0,))),
        ("sae.feature_splits", "not an SAE", lambda: sae.feature_splits("a", "b", torch.randn(8, 4), torch.zeros(8, dtype=torch.long), 4)),
        ("sae.train_topk", "not an SAE", lambda: sae.train_topk("sae", torch.randn(8, 4), 1)),
        ("sae.train_topk", "zero steps", lambda: sae.train_topk(sae.TopKSAE(4, 8, k=2), torch.randn(8, 4), 0)),
        ("sae.match_features", "width mismatch", lambda: sae.match_features(torch.randn(3, 4), torch.randn(3, 5))),
        ("sae.recovered_vs_mean", "not an SAE", lambda: sae.recovered_vs_mean(m(), "sae", t(), hook_name())),
        ("sae.train_sparse_sae", "1-d acts", lambda: sae.train_sparse_sae(torch.randn(8))),
        ("sae.load_frontier", "no card", lambda: sae.load_frontier("/nonexistent-frontier")),
        ("sae.frontier_data", "not a recipe", lambda: sae.frontier_data({"data": 1})),
        ("sae.build_frontier", "no sweep", lambda: sae.build_frontier("/nonexistent-frontier", {"data": 1})),
        ("sae.packed_tokens", "a str, not a list", lambda: sae.packed_tokens(m(), "some text", 8)),  # pyright: ignore[reportArgumentType]
        ("sae.residual_activations", "1-d tokens", lambda: sae.residual_activations(m(), torch.zeros(5, dtype=torch.long), 0)),
        ("sae.latent_for_label", "labels of the wrong length", lambda: sae.latent_for_label(torch.randn(10, 4), torch.ones(3), 5)),
        ("sae.build_robustness", "no sweep", lambda: sae.build_robustness("/nonexistent-frontier", {"data": 1})),
        ("sae.load_robustness", "no record", lambda: sae.load_robustness("/nonexistent-frontier")),
        ("sae.seed_recipe", "not an int", lambda: sae.seed_recipe("1")),  # pyright: ignore[reportArgumentType]
        ("sae.retrain_point", "unknown arch", lambda: sae.retrain_point(sae.load_robustness()["seed 1"], "gated", 1.0)),
        ("attention.phase_data", "not a recipe", lambda: attention.phase_data({"data": 1})),
        ("attention.phase_model", "negative seed", lambda: attention.phase_model(-1)),
        ("attention.shuffle_repeats", "tokens, not a batch", lambda: attention.shuffle_repeats(t(), torch.Generator())),
        ("attention.train_phase_run", "zero steps", lambda: attention.train_phase_run(0, 0)),
        ("attention.build_phase_runs", "not a recipe", lambda: attention.build_phase_runs("/nonexistent-runs", {"data": 1})),
        ("attention.phase_card", "no card", lambda: attention.phase_card("/nonexistent-runs")),
        ("attention.load_phase_run", "no such seed", lambda: attention.load_phase_run(99)),
        ("attention.phase_summary", "not a history", lambda: attention.phase_summary(m(), {"steps": torch.arange(3)})),
        ("attention.phase_claims", "a dict, not a summary", lambda: attention.phase_claims({})),
        ("attention.prefix_drift", "histories without steps", lambda: attention.prefix_drift({}, {})),
        ("open_problems.toy_sae_activations", "not a recipe", lambda: open_problems.toy_sae_activations({"data": 1})),
        ("open_problems.build_toy_saes", "not a recipe", lambda: open_problems.build_toy_saes("/nonexistent-saes", {"data": 1})),
        ("open_problems.load_toy_saes", "no card", lambda: open_problems.load_toy_saes("/nonexistent-saes")),
        ("open_problems.build_long_toy_saes", "not a recipe", lambda: open_problems.build_long_toy_saes("/nonexistent-saes", {"data": 1})),
        ("open_problems.build_long_toy_saes", "no card there", lambda: open_problems.build_long_toy_saes("/nonexistent-saes")),
        ("sae.sae_set_activations", "not a recipe", lambda: sae.sae_set_activations({"hook": "x"})),
        ("sae.train_spec", "spec without steps", lambda: sae.train_spec({"arch": "topk"}, torch.zeros(4, 8), {})),
        ("sae.build_sae_set", "not a recipe", lambda: sae.build_sae_set("/nonexistent-saes", {"data": 1})),
        ("sae.load_sae_set", "no card", lambda: sae.load_sae_set("/nonexistent-saes")),
        ("open_problems.train_toy_sae", "unknown name", lambda: open_problems.train_toy_sae("topk3", torch.randn(8, 4))),
        ("open_problems.train_toy_sae", "1-d acts", lambda: open_problems.train_toy_sae("topk8", torch.randn(8))),
        ("open_problems.compute_equivalent", "zero total steps", lambda: open_problems.compute_equivalent([0, 1], [2.0, 1.0], 1.5, 0)),
        ("open_problems.compute_equivalent", "run before the curve", lambda: open_problems.compute_equivalent([5, 6], [2.0, 1.0], 1.5, 2)),
        ("open_problems.dictionary_agreement", "not an SAE", lambda: open_problems.dictionary_agreement("a", torch.randn(3, 4))),
        ("open_problems.dictionary_agreement", "width mismatch", lambda: open_problems.dictionary_agreement(torch.randn(3, 4), torch.randn(3, 5))),
        ("open_problems.dictionary_agreement", "decoder with acts", lambda: open_problems.dictionary_agreement(torch.randn(3, 4), torch.randn(3, 4), torch.randn(8, 4))),
        ("open_problems.spliced_loss", "not callable", lambda: open_problems.spliced_loss(m(), "sae", t(), hook_name())),  # pyright: ignore[reportArgumentType]
        ("open_problems.spliced_loss", "no such hook", lambda: open_problems.spliced_loss(m(), lambda a: a, t(), "blocks.9.hook_nothing")),
        ("open_problems.latent_probe_correct", "labels of the wrong length", lambda: open_problems.latent_probe_correct(torch.randn(10, 4), torch.ones(3))),
        ("open_problems.latent_probe_correct", "one class only", lambda: open_problems.latent_probe_correct(torch.randn(10, 4), torch.ones(10))),
        ("sae.score_point", "not an SAE", lambda: sae.score_point("topk", 8.0, "sae", sae.TrainHistory(), torch.randn(8, 4), None)),
    ]  # fmt: skip


@functools.cache
def labels():
    return explain.token_labels(torch.randint(3, 40, (2, 6), generator=torch.Generator().manual_seed(0)))


def _cases_explain() -> list[tuple[str, str, object]]:
    acts, where = lambda: torch.rand(2, 6), lambda: torch.tensor([[0, 1], [1, 2]])
    pred = lambda: torch.rand(2, 6) < 0.5  # noqa: E731
    h = lambda: explain.hierarchical_features(50, seed=0)  # noqa: E731
    return [
        ("explain.max_activating", "int acts", lambda: explain.max_activating(torch.ones(2, 6, dtype=torch.long), 2)),
        ("explain.max_activating", "zero n", lambda: explain.max_activating(acts(), 0)),
        ("explain.max_activating", "mask shape", lambda: explain.max_activating(acts(), 2, torch.ones(2, 5, dtype=torch.bool))),
        ("explain.random_activating", "1-D acts", lambda: explain.random_activating(torch.rand(6), 2)),
        ("explain.random_activating", "1-D exclude", lambda: explain.random_activating(acts(), 2, exclude=torch.tensor([0, 1]))),
        ("explain.non_activating", "float mask", lambda: explain.non_activating(acts(), 2, mask=torch.ones(2, 6))),
        ("explain.shuffled_activations", "3-D acts", lambda: explain.shuffled_activations(torch.rand(2, 6, 3))),
        ("explain.context_text", "outside tokens", lambda: explain.context_text(toks(), (5, 0), ["a"] * 40)),
        ("explain.context_text", "float tokens", lambda: explain.context_text(toks().float(), (0, 0), ["a"] * 40)),
        ("explain.token_labels", "out-of-vocab", lambda: explain.token_labels(toks() + 1000)),
        ("explain.token_labels", "float tokens", lambda: explain.token_labels(toks().float())),
        ("explain.token_labels", "mask shape", lambda: explain.token_labels(toks(), torch.ones(2, 5, dtype=torch.bool))),
        ("explain.explain_latent", "not a LabelTable", lambda: explain.explain_latent({"a": 1}, where())),
        ("explain.explain_latent", "empty where", lambda: explain.explain_latent(labels(), torch.zeros(0, 2, dtype=torch.long))),
        ("explain.explain_latent", "where outside", lambda: explain.explain_latent(labels(), torch.tensor([[9, 0]]))),
        ("explain.lm_explanation", "an organism", lambda: explain.lm_explanation(model(), ["a [[b]]"])),
        ("explain.label_from_text", "not a LabelTable", lambda: explain.label_from_text({}, "names")),
        ("explain.label_from_text", "text not a str", lambda: explain.label_from_text(labels(), 3)),
        ("explain.balanced_accuracy", "all positives", lambda: explain.balanced_accuracy(pred()[0], torch.ones(6, dtype=torch.bool))),
        ("explain.balanced_accuracy", "float predicted", lambda: explain.balanced_accuracy(torch.rand(6), pred()[0])),
        ("explain.balanced_accuracy", "length mismatch", lambda: explain.balanced_accuracy(pred()[0], pred()[0, :4])),
        ("explain.detection_accuracy", "float predicate", lambda: explain.detection_accuracy(acts(), where(), where())),
        ("explain.detection_accuracy", "positives outside", lambda: explain.detection_accuracy(pred(), torch.tensor([[0, 9]]), where())),
        ("explain.detection_accuracy", "1-D negatives", lambda: explain.detection_accuracy(pred(), where(), torch.tensor([0, 1]))),
        ("explain.fuzzing_accuracy", "acts shape", lambda: explain.fuzzing_accuracy(pred(), torch.rand(2, 5), where())),
        ("explain.fuzzing_accuracy", "no quiet token", lambda: explain.fuzzing_accuracy(pred(), torch.ones(2, 6), where())),
        ("explain.score_latents", "2-D acts", lambda: explain.score_latents(labels(), acts())),
        ("explain.score_latents", "bad explain_from", lambda: explain.score_latents(labels(), torch.rand(2, 6, 3), explain_from="top")),
        ("explain.hierarchical_features", "zero rows", lambda: explain.hierarchical_features(0)),
        ("explain.hierarchical_features", "d too small", lambda: explain.hierarchical_features(10, d=4)),
        ("explain.train_hierarchy_sae", "not a Hierarchy", lambda: explain.train_hierarchy_sae(torch.randn(10, 32))),
        ("explain.main_latent", "float fires", lambda: explain.main_latent(torch.rand(6, 3), pred()[0])),
        ("explain.main_latent", "no positives", lambda: explain.main_latent(torch.rand(6, 3) > 0.5, torch.zeros(6, dtype=torch.bool))),
        ("explain.absorption_rate", "decoder shape", lambda: explain.absorption_rate(h().x @ torch.randn(32, 5), torch.randn(4, 32),
                                                                                     h().parent, h().directions[0])),
        ("explain.absorption_rate", "min_cosine 2", lambda: explain.absorption_rate(torch.rand(50, 4), torch.randn(4, 32), h().parent,
                                                                                    h().directions[0], 2.0)),
        ("explain.absorption_rate", "direction a list", lambda: explain.absorption_rate(torch.rand(50, 4), torch.randn(4, 32),
                                                                                        h().parent, [1.0] * 32)),
    ]  # fmt: skip


def _cases_attribution_graph() -> list[tuple[str, str, object]]:
    """Chapter 08's attention effects (and the scale added to measured_ablation_effects); they fail on their
    inputs before touching the model or the transcoders, so none is built."""
    AG = attribution_graph
    prompts = lambda: AG.fact_prompts("capital")  # noqa: E731
    eff = lambda: {"norms frozen": torch.zeros(3), "both frozen (as the graph)": torch.zeros(3)}  # noqa: E731
    return [
        ("attribution_graph.fact_prompts", "unknown relation", lambda: AG.fact_prompts("colour")),
        ("attribution_graph.effects_by_mode", "answers missing", lambda: AG.effects_by_mode(model(), [], prompts()[0], [])),
        ("attribution_graph.effects_by_mode", "no prompts", lambda: AG.effects_by_mode(model(), [], [], [])),
        ("attribution_graph.effects_by_mode", "scale a str", lambda: AG.effects_by_mode(model(), [], *prompts(), scale="5")),
        ("attribution_graph.attention_gap", "a mode missing", lambda: AG.attention_gap({"live": torch.zeros(3)})),
        ("attribution_graph.gap_by_group", "negative threshold", lambda: AG.gap_by_group(eff(), threshold=-1.0)),
        ("attribution_graph.gap_by_group", "a mode missing", lambda: AG.gap_by_group({"norms frozen": torch.zeros(3)})),
        ("attribution_graph.attention_shift", "layer outside", lambda: AG.attention_shift(model(), [], toks()[:1], (5, 0, 0))),
        ("attribution_graph.measured_ablation_effects", "scale a str",
         lambda: AG.measured_ablation_effects(model(), [], toks()[:1], None, torch.tensor([0]), scale="2")),
    ]  # fmt: skip


def all_cases() -> list[tuple[str, str, object]]:
    return (_cases_base() + _cases_tasks() + _cases_patching() + _cases_probing() + _cases_open_problems()
            + _cases_attention() + _cases_sae() + _cases_superposition() + _cases_added_2026_12()
            + _cases_explain() + _cases_attribution_graph())  # fmt: skip


# --------------------------------------------------------------------------- running and classifying


class _Hang(Exception):
    pass


def _names(qualname: str) -> list[str]:
    module, name = qualname.split(".")
    obj = getattr(importlib.import_module(f"tutorial_lib.{module}"), name)
    try:
        return [p for p in inspect.signature(obj).parameters if p not in ("self", "kwargs")]
    except (TypeError, ValueError):
        return []


def classify(qualname: str, call) -> tuple[str, str]:
    """("clear" | "raw" | "silent" | "hang", what happened)."""

    def on_alarm(_signum, _frame):
        raise _Hang

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIMEOUT_S)
    try:
        out = call()
    except _Hang:
        return "hang", f"over {TIMEOUT_S} s"
    except TutorialInputError as err:
        return "clear", str(err)
    except (ValueError, TypeError) as err:
        named = any(re.search(rf"\b{re.escape(n)}\b", str(err)) for n in _names(qualname))
        return ("clear" if named else "raw"), f"{type(err).__name__}: {err}"
    except Exception as err:  # noqa: BLE001 - every other exception is what the sweep counts as "raw"
        return "raw", f"{type(err).__name__}: {str(err)[:200]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return "silent", f"returned {type(out).__name__}"


def public_callables() -> set[str]:
    found = set()
    for module in MODULES:
        mod = importlib.import_module(f"tutorial_lib.{module}")
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            home = getattr(obj, "__module__", "") or ""
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and home.startswith("tutorial_lib"):
                if home != "tutorial_lib.validation":
                    found.add(f"{module}.{name}")
    return found


def sweep() -> tuple[Counter, list[tuple[str, str, str, str]]]:
    torch.manual_seed(0)
    rows = []
    for qualname, label, call in all_cases():
        kind, note = classify(qualname, call)
        rows.append((qualname, label, kind, note))
    return Counter(kind for *_, kind, _ in rows), rows


def test_every_public_function_has_a_case():
    covered = {name for name, *_ in all_cases()}
    assert covered <= public_callables(), f"cases for names that are not public: {covered - public_callables()}"
    missing = public_callables() - covered - NO_CASE
    assert not missing, (
        f"public functions without a bad-input case (add one, or a reason in NO_CASE): {sorted(missing)}"
    )


# Modules whose bad inputs all give clear errors (every swept module, since issue 17).
DONE = set(MODULES)


@functools.cache
def _swept() -> tuple[Counter, list[tuple[str, str, str, str]]]:
    return sweep()


def test_fixed_modules_give_only_clear_errors():
    _, rows = _swept()
    bad = [f"{q} ({lab}): {kind}: {note}" for q, lab, kind, note in rows if q.split(".")[0] in DONE and kind != "clear"]
    assert not bad, "\n".join(bad)


def test_bad_inputs_give_clear_errors():
    assert threading.current_thread() is threading.main_thread(), "the per-case timeout uses SIGALRM"
    counts, rows = _swept()
    total = sum(counts.values())
    modules = sorted({q.split(".")[0] for q, *_ in rows})
    print(f"\ninput sweep: {total} bad inputs over {len({q for q, *_ in rows})} public functions: "
          + ", ".join(f"{counts[k]} {k}" for k in ("clear", "raw", "silent", "hang")))  # fmt: skip
    for module in modules:
        mine = [r for r in rows if r[0].split(".")[0] == module]
        print(f"  {module}: {sum(r[2] == 'clear' for r in mine)} of {len(mine)} clear")
    for qualname, label, kind, note in rows:
        if kind != "clear":
            print(f"  {kind:6} {qualname} ({label}): {note[:160]}")
    bad = [f"{q} ({lab}): {note}" for q, lab, kind, note in rows if kind in ("silent", "hang")]
    assert not bad, "bad input accepted without an error:\n" + "\n".join(bad)
    assert counts["clear"] >= math.ceil(0.95 * total), f"only {counts['clear']} of {total} clear"
