"""The base sparse autoencoder: parameters, encode/decode, the shared loss with AuxK, decoder norms.

Every SAE here computes  pre = x @ W_enc + b_enc,  z = activation(pre),  x_hat = z @ W_dec + b_dec
with W_enc [d_in, d_sae] and W_dec [d_sae, d_in] (SAELens's layout and key names). The input is not
shifted by b_dec before encoding (SAELens's `apply_b_dec_to_input=False`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..validation import TutorialInputError, expect_dtype, expect_ndim, expect_shape
from .sparse import _decode, _GatherLinear

__all__ = ["SAE", "LossOutput"]


@dataclass
class TrainForward:
    """What one training forward pass hands to the loss.

    Chapter 02: sparse autoencoders.
    """

    x_hat: Tensor
    pre: Tensor  # pre-activations; detached on the sparse path
    fired: Tensor  # [d_sae] bool: latents active on this batch
    l0: Tensor  # scalar: mean active latents per row
    penalty: Tensor  # scalar sparsity penalty (0 for TopK-style SAEs)
    sparse_x: Tensor | None = None  # the input, when pre has no graph (for the AuxK gather)


@dataclass
class LossOutput:
    """Total loss and its parts for one batch (all scalars but `fired`).

    Chapter 02: sparse autoencoders.
    """

    loss: Tensor
    mse: Tensor
    penalty: Tensor
    aux: Tensor
    l0: Tensor
    fired: Tensor


class SAE(nn.Module):
    """Base sparse autoencoder: parameters, encode/decode, the shared loss, decoder-norm handling.

    Chapter 02: sparse autoencoders.

    Subclasses set `architecture`, `unit_norm_decoder` and implement `activation` (dense codes) and,
    where they have one, `penalty` (the sparsity term of the loss).
    """

    architecture = "base"
    unit_norm_decoder = True
    uses_aux = False  # whether AuxK applies by default

    def __init__(self, d_in: int, d_sae: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        if not isinstance(d_in, int) or not isinstance(d_sae, int) or d_in < 1 or d_sae < 1:
            raise TutorialInputError(f"d_in and d_sae must be positive ints, got d_in={d_in!r}, d_sae={d_sae!r}.")
        self.d_in, self.d_sae = d_in, d_sae
        gen = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(d_sae, d_in, generator=gen, dtype=torch.float32)
        W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
        if not self.unit_norm_decoder:
            W_dec = W_dec * 0.1  # Anthropic's April 2024 initialisation for L1-trained SAEs
        self.W_dec = nn.Parameter(W_dec.to(device=device, dtype=dtype))
        self.W_enc = nn.Parameter(W_dec.t().clone().to(device=device, dtype=dtype))  # tied init
        self.b_enc = nn.Parameter(torch.zeros(d_sae, device=device, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device, dtype=dtype))
        self.hook_name: str | None = None

    # -- the forward pass -------------------------------------------------------------------
    def pre_acts(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        return torch.addmm(self.b_enc, x, self.W_enc)

    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        raise NotImplementedError

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """Dense latent codes (inference behaviour)."""
        x = self.check_input(x)
        return self.activation(self.pre_acts(x))

    def decode(self, z: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_in"]:
        return torch.addmm(self.b_dec, z, self.W_dec)

    def forward(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_in"]:
        """Reconstruction x_hat; leading dimensions beyond [batch, d_in] are flattened and restored."""
        shape = x.shape
        x_hat = self.decode(self.encode(x.reshape(-1, shape[-1]) if x.ndim != 2 else x))
        return x_hat.reshape(shape)

    def train_forward(self, x: Tensor, frac: float) -> TrainForward:
        """Forward pass used by the loss; `frac` is the fraction of training done (for warm-ups)."""
        pre = self.pre_acts(x)
        z = self.activation(pre)
        active = z > 0
        return TrainForward(
            self.decode(z), pre, active.any(0), active.sum(1).float().mean(), self.penalty(z, pre, frac)
        )

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:  # noqa: ARG002 - the subclasses' interface
        """The sparsity term of the loss from codes z, pre-activations and the fraction of training done."""
        return z.new_zeros(())

    # -- the loss -----------------------------------------------------------------------------
    def loss(
        self,
        x: Float[Tensor, "batch d_in"],
        *,
        dead: Tensor | None = None,
        aux_coeff: float = 0.0,
        k_aux: int | None = None,
        frac: float = 1.0,
    ) -> LossOutput:
        """Squared error per row (summed over d_in, mean over batch) + sparsity penalty + AuxK.

        AuxK (Gao et al. 2024): the top `k_aux` dead latents reconstruct the residual x - x_hat;
        their normalised error, times aux_coeff * min(n_dead / k_aux, 1), joins the loss.
        """
        out = self.train_forward(x, frac)
        mse = (out.x_hat - x).pow(2).sum(-1).mean()
        aux = x.new_zeros(())
        if aux_coeff > 0 and dead is not None:
            n_dead = int(dead.sum())
            if n_dead > 0:
                aux = aux_coeff * self._aux_loss(x, out, dead, n_dead, k_aux or max(1, self.d_in // 2))
        return LossOutput(mse + out.penalty + aux, mse, out.penalty, aux, out.l0, out.fired)

    def _aux_loss(self, x: Tensor, out: TrainForward, dead: Tensor, n_dead: int, k_aux: int) -> Tensor:
        scale = min(n_dead / k_aux, 1.0)
        k = min(k_aux, n_dead)
        residual = (x - out.x_hat).detach()
        with torch.no_grad():  # top k among the dead columns only
            dead_idx = dead.nonzero().squeeze(1)
            local = out.pre.detach().index_select(1, dead_idx).topk(k, dim=1, sorted=False).indices
            idx = dead_idx[local]
        if out.pre.requires_grad:
            vals = out.pre.gather(1, idx)
        else:
            assert out.sparse_x is not None  # the sparse path hands its input along with detached pre
            vals = _GatherLinear.apply(out.sparse_x, self.W_enc, self.b_enc, out.pre, idx)
        e_hat = _decode(vals.relu(), idx, self.W_dec)
        denom = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return scale * (e_hat - residual).pow(2).sum(-1).mean() / denom

    # -- decoder norms --------------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale decoder rows to unit norm (architectures with `unit_norm_decoder`)."""
        if self.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of the decoder gradient that would only change row norms."""
        if self.unit_norm_decoder and self.W_dec.grad is not None:
            g, W = self.W_dec.grad, self.W_dec
            g.sub_((g * W).sum(1, keepdim=True) * W)

    # -- helpers ----------------------------------------------------------------------------------
    def check_input(self, x: object) -> Tensor:
        """x as a float [batch, d_in] tensor, else a TutorialInputError that says what came."""
        t = expect_ndim(x, 2, "x", "[batch, d_in]")
        expect_shape(t, (None, self.d_in), "x", "[batch, d_in]")
        expect_dtype(t, "float", "x")
        return t

    def extra_cfg(self) -> dict:
        """Architecture-specific entries of the SAELens cfg.json."""
        return {}

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_sae={self.d_sae}"
