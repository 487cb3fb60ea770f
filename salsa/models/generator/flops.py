"""Analytic FLOP counts of the generator (matmuls and attention; elementwise work is ignored).

A multiply-add counts as 2 FLOPs. These are the model's own costs, without rematerialisation, so that
compiled counts (salsa.aot, bench/) can be compared against them.
"""

from __future__ import annotations

import math

import ml_collections


def generator_forward_flops(config: ml_collections.ConfigDict, n_audio: int, n_visual: int) -> int:
    """FLOPs of one forward pass for one row of `n_audio` latent and `n_visual` semantic tokens."""
    m, f = config.model, config.features
    w, mlp, c = m.width, m.mlp_dim, config.audio.latent_dim
    ta, tv = n_audio, n_visual

    def linear(tokens, fan_in, fan_out):
        return 2 * tokens * fan_in * fan_out

    def attention(queries, keys):
        return 4 * queries * keys * w  # q·k and p·v

    total = linear(ta, c, w) + linear(tv, f.semantic_dim, w) + linear(ta, f.sync_dim, w)
    total += 2 * (linear(1, m.freq_dim, w) + linear(1, w, w))  # t and d embedders
    total += linear(1, f.text_dim, w) + linear(1, w, w) + linear(1, f.semantic_dim, w) + linear(1, w, w)
    for i in range(m.n_mm):
        x_attn, update_visual = i < m.n_x, i < m.n_mm - 1
        total += linear(ta, w, (9 if x_attn else 6) * w)  # per-token adaLN
        total += linear(ta, w, 3 * w) + linear(ta, w, w) + 2 * linear(ta, w, mlp)
        total += linear(1, w, (6 if update_visual else 2) * w) + linear(tv, w, 3 * w)
        if update_visual:
            total += linear(tv, w, w) + 2 * linear(tv, w, mlp)
        total += attention(ta + (tv if update_visual else 0), ta + tv)
        if x_attn:
            total += linear(ta, w, 4 * w) + attention(ta, ta)
    for _ in range(m.n_dit):
        total += linear(ta, w, 6 * w) + linear(ta, w, 4 * w) + 2 * linear(ta, w, mlp) + attention(ta, ta)
    total += linear(ta, w, 2 * w) + linear(ta, w, c)  # final adaLN and projection
    return total


def window_tokens(config: ml_collections.ConfigDict, seconds: float) -> tuple[int, int]:
    """(audio, visual) token counts of a `seconds`-long window."""
    rate = config.audio.sample_rate / config.audio.hop
    return math.ceil(seconds * rate), math.ceil(seconds * config.video.semantic_fps)


def train_step_flops(config: ml_collections.ConfigDict) -> int:
    """FLOPs of one generator train step at config.batch_size and config.train_crop_s.

    Student forward + backward (3 forwards' worth) on every row, plus the EMA teacher's two
    half-step forwards on the self-consistency rows and, with guidance baked into training, its
    forwards on the flow rows (one branch, two with objective.sc_guidance_mix < 1).
    """
    o = config.objective
    per_row = generator_forward_flops(config, *window_tokens(config, config.train_crop_s))
    teacher = 2 * config.batch_size * o.sc_fraction
    if o.sc_guidance > 0:
        teacher += config.batch_size * (1 - o.sc_fraction) * (1 if o.get("sc_guidance_mix", 1.0) == 1 else 2)
    return int(per_row * (3 * config.batch_size + teacher))
