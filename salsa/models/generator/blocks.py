"""Transformer blocks of the generator (paper §3, Fig. 1).

JointBlock (MMDiT-X): joint attention over [audio; visual], each stream with its own projections,
norms, MLP and adaLN; with `audio_self_attn` an audio-only self-attention runs beside the joint one
with its own shift/scale/gate (SD3.5's MMDiT-X). Audio is modulated per token by the local condition,
visual by the global condition. DiTBlock: audio-only self-attention + MLP, per-token adaLN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from salsa.models.generator.attention import QKV, Out, attend
from salsa.models.layers import Mlp, Modulation, modulate, standardize
from salsa.sharding import constrain

ACT = ("batch", "length", "embed")


class JointBlock(nnx.Module):
    def __init__(
        self,
        width: int,
        heads: int,
        mlp_dim: int,
        rngs: nnx.Rngs,
        *,
        audio_self_attn: bool,
        update_visual: bool,
        attention: str = "xla",
        **kw,
    ):
        self.attention = attention
        self.audio_self_attn = audio_self_attn
        self.update_visual = update_visual
        self.mod_a = Modulation(width, 9 if audio_self_attn else 6, rngs, **kw)
        self.qkv_a = QKV(width, heads, rngs, **kw)
        self.out_a = Out(width, heads, rngs, **kw)
        self.mlp_a = Mlp(width, mlp_dim, width, rngs, **kw)
        # The last joint block feeds only audio onward, so its visual stream stops after q/k/v.
        self.mod_v = Modulation(width, 6 if update_visual else 2, rngs, **kw)
        self.qkv_v = QKV(width, heads, rngs, **kw)
        if update_visual:
            self.out_v = Out(width, heads, rngs, **kw)
            self.mlp_v = Mlp(width, mlp_dim, width, rngs, **kw)
        if audio_self_attn:
            self.qkv_x = QKV(width, heads, rngs, **kw)
            self.out_x = Out(width, heads, rngs, **kw)

    def __call__(
        self,
        a: jax.Array,
        v: jax.Array,
        c_local: jax.Array,
        c_global: jax.Array,
        ang_a: jax.Array,
        ang_v: jax.Array,
        mask_a: jax.Array,
        mask_v: jax.Array,
    ) -> tuple[jax.Array, jax.Array]:
        """a (B, Ta, W), v (B, Tv, W), c_local (B, Ta, W), c_global (B, W) -> updated (a, v)."""
        # adaLN chunks, in the order the modulation's projection was trained with.
        shift_attn_a, scale_attn_a, gate_attn_a, shift_mlp_a, scale_mlp_a, gate_mlp_a, *self_attn_mod = (
            self.mod_a(c_local)
        )
        shift_attn_v, scale_attn_v, *visual_rest = self.mod_v(c_global[:, None])
        na, nv = standardize(a), standardize(v)

        qa, ka, va = self.qkv_a(modulate(na, shift_attn_a, scale_attn_a), ang_a)
        qv, kv, vv = self.qkv_v(modulate(nv, shift_attn_v, scale_attn_v), ang_v)
        keys_mask = jnp.concatenate([mask_a, mask_v], axis=1)
        k, val = jnp.concatenate([ka, kv], axis=1), jnp.concatenate([va, vv], axis=1)
        n_a = a.shape[1]
        if self.update_visual:
            o = attend(jnp.concatenate([qa, qv], axis=1), k, val, keys_mask, self.attention)
            oa, ov = o[:, :n_a], o[:, n_a:]
        else:
            oa = attend(qa, k, val, keys_mask, self.attention)

        a = a + gate_attn_a * self.out_a(oa)
        if self.audio_self_attn:
            shift_self_a, scale_self_a, gate_self_a = self_attn_mod
            qx, kx, vx = self.qkv_x(modulate(na, shift_self_a, scale_self_a), ang_a)
            a = a + gate_self_a * self.out_x(attend(qx, kx, vx, mask_a, self.attention))
        a = a + gate_mlp_a * self.mlp_a(modulate(standardize(a), shift_mlp_a, scale_mlp_a))

        if self.update_visual:
            gate_attn_v, shift_mlp_v, scale_mlp_v, gate_mlp_v = visual_rest
            v = v + gate_attn_v * self.out_v(ov)
            v = v + gate_mlp_v * self.mlp_v(modulate(standardize(v), shift_mlp_v, scale_mlp_v))
        return constrain(a, ACT), constrain(v, ACT)


class DiTBlock(nnx.Module):
    def __init__(self, width: int, heads: int, mlp_dim: int, rngs: nnx.Rngs, *, attention: str = "xla", **kw):
        self.attention = attention
        self.mod = Modulation(width, 6, rngs, **kw)
        self.qkv = QKV(width, heads, rngs, **kw)
        self.out = Out(width, heads, rngs, **kw)
        self.mlp = Mlp(width, mlp_dim, width, rngs, **kw)

    def __call__(self, a: jax.Array, c_local: jax.Array, ang: jax.Array, mask: jax.Array) -> jax.Array:
        """a (B, Ta, W), c_local (B, Ta, W) -> (B, Ta, W)."""
        shift_attn, scale_attn, gate_attn, shift_mlp, scale_mlp, gate_mlp = self.mod(c_local)
        q, k, v = self.qkv(modulate(standardize(a), shift_attn, scale_attn), ang)
        a = a + gate_attn * self.out(attend(q, k, v, mask, self.attention))
        a = a + gate_mlp * self.mlp(modulate(standardize(a), shift_mlp, scale_mlp))
        return constrain(a, ACT)
