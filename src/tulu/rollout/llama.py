"""Our own inference-only forward pass for Llama-family decoders, over the weights of an HF model.

Why it exists: on a 2-core CPU, HF ``generate`` spends most of a decode step in small, badly blocked
matmuls (``F.linear`` with 1-32 rows), in Python dispatch across ~20 ops per layer, and in growing its
dynamic KV cache. This module keeps the same arithmetic (RMSNorm, RoPE, grouped-query attention, SiLU
MLP, tied or untied LM head) but

* fuses q/k/v and gate/up into one matrix each (fewer, larger matmuls);
* on CPU fp32, runs the whole decode step as one compiled call (``csrc/decode.cpp``, see
  :mod:`tulu.rollout.kernels`): weights stored as 8-column panels that a small-M matmul streams at the
  machine's read bandwidth (1.6-2.3x oneDNN's pre-packed kernel at 8 rows, 1.2-1.6x at 32, on this
  model's shapes), and RMSNorm, RoPE, the cache write, grouped-query attention and SiLU as plain loops
  between them, with no Python dispatch inside the step;
* optionally (``weights="bfloat16"``, or ``"auto"`` where measured faster: :mod:`tulu.rollout.weights`)
  stores those panels as bf16: half the bytes a step streams; where the build targets AVX512-BF16 the
  matmuls then multiply in bf16 (vdpbf16ps, ``csrc/dpbf16.cpp``: activations rounded to bf16 at each
  matmul input, fp32 accumulation, ~2x the fp32 kernel's multiply-adds a cycle), elsewhere the bf16
  weights are widened to fp32 as they are loaded (fp32 arithmetic throughout);
* without the compiled kernels (no C++ compiler, or ``compiled=False``), stores every weight pre-packed in
  oneDNN's blocked layout (``mkldnn._reorder_linear_weight``; 1.5-4x ``F.linear`` at 1-32 rows) and runs
  the same step in Python;
* writes keys and values into a preallocated static cache ``[layers, 2, slots, kv_heads, max_len, dim]``;
* computes the LM head only for the positions that are sampled;
* prefills several prompts packed into one row, attending within each prompt, optionally after a
  shared prefix computed once.

Supported: ``LlamaForCausalLM`` and architectures with the same module tree (Mistral without sliding
window, Qwen2 with q/k/v biases, SmolLM). :func:`supports` says whether a model qualifies; the fast
backend refuses the others with a clear message. Parity with HF logits is tested in tests/rollout.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tulu.rollout import kernels
from tulu.rollout import weights as weight_precision

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "smollm3")


class UnsupportedModel(ValueError):
    pass


def supports(model) -> str | None:
    """``None`` when :class:`FastLlama` can run ``model``; otherwise the reason it cannot."""
    cfg = getattr(model, "config", None)
    if cfg is None:
        return "not a transformers model (no .config)"
    if cfg.model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {cfg.model_type!r} is not one of {SUPPORTED_MODEL_TYPES}"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.hidden_act!r} (only silu)"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return "sliding-window attention"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "layers") or not hasattr(inner, "rotary_emb"):
        return "unexpected module tree (needs model.model.layers and model.model.rotary_emb)"
    rope = getattr(inner.rotary_emb, "rope_type", "default")
    if rope == "dynamic":
        return "dynamic RoPE scaling"
    return None


def _mkldnn_ok(device: torch.device, dtype: torch.dtype) -> bool:
    return (device.type == "cpu" and dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


class Linear:
    """``y = x @ W.T + b`` on 2-D ``x``, with the weight stored for the fastest kernel available:

    * ``"panel"``: our panel-packed layout for the compiled small-M matmul (``csrc/decode.cpp``), on CPU
      fp32 when the compiled kernels load and ``out_features`` is a multiple of 16;
    * ``"mkldnn"``: oneDNN's pre-packed layout, on CPU fp32 otherwise;
    * ``"plain"``: ``F.linear`` (GPU, other dtypes).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, kind: str, batch_hint: int):
        self.out_features, self.in_features = weight.shape
        if kind == "panel" and self.out_features % 16:  # panels go in pairs of 8 columns
            kind = "mkldnn" if _mkldnn_ok(weight.device, weight.dtype) else "plain"
        self.kind = kind
        weight = weight.detach().contiguous()
        self.bias = bias.detach().contiguous() if bias is not None else None
        if kind == "panel":
            self.weight = torch.ops.tulu.pack_panels(weight)
        elif kind == "mkldnn":
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint)
        else:
            self.weight = weight

    def to_bf16(self, dot: bool) -> None:
        """Store panel-packed weights as bf16 (round to nearest even): ``dot``, as pair panels for the
        vdpbf16ps kernel (bf16 products); else in the same panels, widened back to fp32 by the kernel."""
        if self.kind == "panel":
            self.weight = bf16_panels(self.weight, dot)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "panel":
            return torch.ops.tulu.panel_linear(x, self.weight, self.bias)
        if self.kind == "mkldnn":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


def bf16_panels(panels: torch.Tensor, dot: bool) -> torch.Tensor:
    """fp32 panels (``pack_panels``, ``[N / 8, K, 8]``) in bf16: as ``pack_panels_dpbf16`` pair panels for the
    vdpbf16ps kernel (``dot``), else the same layout in bf16 (widened to fp32 by the kernel)."""
    if not dot:
        return panels.to(torch.bfloat16)
    return torch.ops.tulu.pack_panels_dpbf16(panels.transpose(1, 2).reshape(-1, panels.shape[1]))


@dataclass
class _Layer:
    ln1: torch.Tensor
    qkv: Linear
    o: Linear
    ln2: torch.Tensor
    gate_up: Linear
    down: Linear


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HF LlamaRMSNorm (``weight * x / sqrt(mean(x^2) + eps)``), as torch's single fused op."""
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x * cos + rotate_half(x) * sin``; x is ``[tokens, heads, dim]``, cos/sin ``[tokens, 1, dim]``."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class FastLlama:
    """Weights and the two forward passes (packed prefill, one-token batched decode)."""

    def __init__(self, model, *, batch_hint: int = 32, device: torch.device | str | None = None,
                 compiled: bool | None = None, weights: str = "float32"):
        reason = supports(model)
        if reason:
            raise UnsupportedModel(f"the fast backend cannot run this model: {reason}; use backend 'hf'")
        cfg = model.config
        self.config = cfg
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        setting = weight_precision.normalize(weights)
        self.num_layers = cfg.num_hidden_layers
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        self.hidden_size = cfg.hidden_size
        self.vocab_size = cfg.vocab_size
        self.eps = cfg.rms_norm_eps
        self.max_positions = cfg.max_position_embeddings
        self.scale = self.head_dim ** -0.5
        cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
        # the compiled decode step and matmul (csrc/decode.cpp) on CPU fp32 unless compiled=False; else
        # oneDNN, else F.linear
        self.compiled = cpu_fp32 and compiled is not False and kernels.available()
        if setting == "bfloat16" and cpu_fp32 and not self.compiled:
            self.dtype = torch.bfloat16  # no bf16 panels without the compiled step: the Python step in bf16
        if compiled and not self.compiled:
            raise ValueError("compiled=True needs CPU float32 weights and the compiled kernels "
                             "(see the warning logged by tulu.rollout.kernels)")
        self.linear_kind = "panel" if self.compiled else "mkldnn" if _mkldnn_ok(self.device, self.dtype) else "plain"
        self.batch_hint = batch_hint
        rot = model.model.rotary_emb
        self.inv_freq = rot.inv_freq.detach().to(self.device, torch.float32)
        self.rope_scaling = float(getattr(rot, "attention_scaling", 1.0))
        self._cos = self._sin = None
        self.bf16_panels = False
        # bf16 weights mean bf16 products (vdpbf16ps) where this build has them, else bf16 storage widened
        # to fp32; bf16_dot: this engine's weights are bf16 and multiplied in bf16
        self._dot_kernel = self.compiled and weight_precision.dot_products_available()
        self.bf16_dot = False
        self.load_state_dict({k: v for k, v in model.state_dict().items()})
        self.weight_choice = weight_precision.choose(
            setting, compiled=self.compiled, dot=self._dot_kernel, hidden=self.hidden_size, measure=self._measure_bf16,
            key_parts=dict(model="decode-step", layers=self.num_layers, hidden=self.hidden_size,
                           intermediate=self.layers[0].down.in_features, heads=self.num_heads,
                           kv_heads=self.num_kv_heads, head_dim=self.head_dim, vocab=self.vocab_size,
                           batch=self.batch_hint))
        if self.weight_choice.dtype == "bfloat16" and self.compiled:
            self.bf16_panels = True
            self.bf16_dot = self._dot_kernel
            self._panels_to_bf16()

    def _panels_to_bf16(self) -> None:
        for layer in self.layers:
            for lin in (layer.qkv, layer.o, layer.gate_up, layer.down):
                lin.to_bf16(self._dot_kernel)
        self.lm_head.to_bf16(self._dot_kernel)
        # the embedding rows rounded the same way (kept fp32: a lookup reads a few rows): every matrix of the
        # model is then its bf16 value, so a tied head and the embedding agree
        self.embed = self.embed.to(torch.bfloat16).to(self.dtype)
        self._flatten()

    def _flatten(self) -> None:
        empty = torch.empty(0, device=self.device, dtype=self.dtype)
        self._flat = [t if t is not None else empty for layer in self.layers for t in (
            layer.ln1, layer.qkv.weight, layer.qkv.bias, layer.o.weight, layer.o.bias, layer.ln2,
            layer.gate_up.weight, layer.down.weight)]  # the compiled step's layout: 8 tensors per layer

    def _measure_bf16(self, positions: int = 64, repeats: int = 5) -> dict:
        """Seconds of one compiled decode step (all layers and the LM head, ``batch_hint`` rows, ``positions``
        cached tokens) on the fp32 panels and on the bf16 panels the engine would use (pair panels for bf16
        products where available), alternating (weights.time_steps)."""
        b = self.batch_hint
        cache = torch.zeros(self.num_layers, 2, b, self.num_kv_heads, positions + 1, self.head_dim)
        tokens = torch.arange(b) % self.vocab_size
        pos = torch.full((b,), positions)
        cos, sin = self._rope(pos)
        flats = {"fp32": self._flat, "bf16": [bf16_panels(t, self._dot_kernel) if t.dim() == 3 else t for t in self._flat]}
        heads = {"fp32": self.lm_head.weight, "bf16": bf16_panels(self.lm_head.weight, self._dot_kernel)}

        def step(kind: str):
            def run():
                x = torch.ops.tulu.decode_layers(self.embed[tokens], flats[kind], cache, pos, cos[:, 0], sin[:, 0],
                                                 self.num_heads, self.num_kv_heads, self.eps, self.scale)
                return torch.ops.tulu.panel_linear(rms_norm(x, self.norm, self.eps), heads[kind], None)
            return run

        with torch.inference_mode():
            best = weight_precision.time_steps({"fp32": step("fp32"), "bf16": step("bf16")}, repeats)
        return {"fp32_s": best["fp32"], "bf16_s": best["bf16"], "speedup": best["fp32"] / best["bf16"], "batch": b,
                "positions": positions, "products": "bf16" if self._dot_kernel else "fp32"}

    # ---------------------------------------------------------------- weights
    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """(Re)build the packed weights from an HF-named state dict (also the in-place RLVR update)."""

        def get(name: str) -> torch.Tensor:
            if name not in sd:
                raise KeyError(f"state dict has no {name!r}")
            return sd[name].detach().to(self.device, self.dtype)

        def opt(name: str) -> torch.Tensor | None:
            return get(name) if name in sd else None

        def lin(ws: list[torch.Tensor], bs: list[torch.Tensor | None]) -> Linear:
            bias = torch.cat([b if b is not None else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
                              for w, b in zip(ws, bs)]) if any(b is not None for b in bs) else None
            return Linear(torch.cat(ws) if len(ws) > 1 else ws[0], bias, kind=self.linear_kind, batch_hint=self.batch_hint)

        layers = []
        for i in range(self.num_layers):
            p = f"model.layers.{i}."
            att = p + "self_attn."
            layers.append(_Layer(
                ln1=get(p + "input_layernorm.weight"),
                qkv=lin([get(att + f"{n}_proj.weight") for n in "qkv"], [opt(att + f"{n}_proj.bias") for n in "qkv"]),
                o=lin([get(att + "o_proj.weight")], [opt(att + "o_proj.bias")]),
                ln2=get(p + "post_attention_layernorm.weight"),
                gate_up=lin([get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")], [None, None]),
                down=lin([get(p + "mlp.down_proj.weight")], [None]),
            ))
        self.layers = layers
        self.embed = get("model.embed_tokens.weight").contiguous()
        self.norm = get("model.norm.weight")
        head = sd.get("lm_head.weight")
        head = self.embed if head is None else head.detach().to(self.device, self.dtype)
        self.lm_head = Linear(head, None, kind=self.linear_kind, batch_hint=self.batch_hint)
        if self.bf16_panels:  # an in-place update keeps the engine's weight precision
            self._panels_to_bf16()
        else:
            self._flatten()

    # ---------------------------------------------------------------- rope tables
    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        need = int(positions.max()) + 1
        if self._cos is None or self._cos.shape[0] < need:
            n = max(need, 2 * (self._cos.shape[0] if self._cos is not None else 256))
            pos = torch.arange(n, device=self.device, dtype=torch.float32)
            freqs = pos[:, None] * self.inv_freq[None, :]  # same products as HF's outer product
            emb = torch.cat((freqs, freqs), dim=-1)
            self._cos = (emb.cos() * self.rope_scaling).to(self.dtype)
            self._sin = (emb.sin() * self.rope_scaling).to(self.dtype)
        return self._cos[positions][:, None, :], self._sin[positions][:, None, :]

    # ---------------------------------------------------------------- cache
    def new_cache(self, slots: int, max_len: int) -> torch.Tensor:
        """``[layers, 2, slots, kv_heads, max_len, dim]``. Left uninitialised for the compiled step, which reads
        a row only up to its position (zeroing 250 MB at batch 32 took 0.1-0.36 s, up to 2% of a 128-token
        run); zeroed for the Python step, whose masked attention still multiplies the masked values by 0."""
        alloc = torch.empty if self.compiled else torch.zeros
        return alloc(self.num_layers, 2, slots, self.num_kv_heads, max_len, self.head_dim, device=self.device,
                     dtype=self.dtype)

    def cache_bytes(self, slots: int, max_len: int) -> int:
        return self.num_layers * 2 * slots * self.num_kv_heads * max_len * self.head_dim * self.dtype.itemsize

    # ---------------------------------------------------------------- forward passes
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(rms_norm(hidden, self.norm, self.eps))

    @torch.inference_mode()
    def prefill(self, seqs: list[list[int]], past: torch.Tensor | None = None,
                all_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Run several prompts packed into one row: the matmuls see every token at once, attention runs
        causally within each prompt (one SDPA call per prompt: a block-diagonal ``[T, T]`` mask over the
        whole row cost 32x the attention work at 32 prompts and measured ~35% of the prefill).

        ``past``: the keys/values ``[layers, 2, P, kv_heads, dim]`` of a prefix that every sequence in
        ``seqs`` continues (an earlier prefill's output): the sequences then start at position ``P`` and
        also attend to it. This is how a prompt prefix shared by a whole batch (chat template, system
        prompt, few-shot examples) is computed once.

        Returns the logits at each sequence's last token ``[len(seqs), vocab]`` (``all_logits``: at every
        token, ``[total_tokens, vocab]`` in packed order, for log-likelihood scoring) and the keys/values of
        the new tokens ``[layers, 2, total_tokens, kv_heads, dim]`` in packed order.
        """
        lens = [len(s) for s in seqs]
        total = sum(lens)
        dev = self.device
        start = 0 if past is None else past.shape[2]
        tokens = torch.tensor([t for s in seqs for t in s], device=dev)
        positions = torch.cat([torch.arange(start, start + n, device=dev) for n in lens])
        cos, sin = self._rope(positions)
        nh, nkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        group = nh // nkv
        kv = torch.empty(self.num_layers, 2, total, nkv, d, device=dev, dtype=self.dtype)
        # each sequence's queries see the whole prefix and their own earlier tokens (lower-right causal)
        masks = {n: torch.ones(n, start + n, dtype=torch.bool, device=dev).tril(start) for n in set(lens)} if start else {}
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            h = rms_norm(x, layer.ln1, self.eps)
            qkv = layer.qkv(h)
            qk = apply_rope(qkv[:, :(nh + nkv) * d].view(total, nh + nkv, d), cos, sin)  # q and k in one go
            q, k = qk[:, :nh], qk[:, nh:]
            v = qkv[:, (nh + nkv) * d:].view(total, nkv, d)
            kv[i, 0] = k
            kv[i, 1] = v
            # [1, heads, tokens, dim], keys/values repeated per query head (HF's repeat_kv order): with
            # enable_gqa, or with 3-D inputs, CPU SDPA takes its unfused math path (measured 4-11x slower
            # at 45-900 tokens than the fused causal kernel these 4-D inputs get)
            q = q.transpose(0, 1)[None]
            k = k.transpose(0, 1).repeat_interleave(group, dim=0)[None]
            v = v.transpose(0, 1).repeat_interleave(group, dim=0)[None]
            if start:
                pk, pv = (past[i, j].transpose(0, 1).repeat_interleave(group, dim=0)[None] for j in (0, 1))
            outs = []
            for qs, ks, vs in zip(q.split(lens, 2), k.split(lens, 2), v.split(lens, 2)):
                if start:
                    ks, vs = torch.cat((pk, ks), 2), torch.cat((pv, vs), 2)
                outs.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=masks.get(qs.shape[2]),
                                                           is_causal=not start, scale=self.scale))
            att = torch.cat(outs, dim=2)
            x = x + layer.o(att[0].transpose(0, 1).reshape(total, nh * d))
            h = rms_norm(x, layer.ln2, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        if all_logits:
            return self.logits(x), kv
        last = torch.tensor(lens, device=dev).cumsum(0) - 1
        return self.logits(x[last]), kv

    @torch.inference_mode()
    def decode(self, cache: torch.Tensor, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One token for each of the first ``B = len(tokens)`` cache rows; row ``b`` holds ``positions[b]``
        tokens already. Writes the new keys/values in place and returns logits ``[B, vocab]``."""
        if self.compiled:
            cos, sin = self._rope(positions)
            x = torch.ops.tulu.decode_layers(self.embed[tokens], self._flat, cache, positions, cos[:, 0], sin[:, 0],
                                             self.num_heads, self.num_kv_heads, self.eps, self.scale)
            return self.logits(x)
        b = tokens.shape[0]
        length = int(positions.max()) + 1
        nh, nkv, d = self.num_heads, self.num_kv_heads, self.head_dim
        group = nh // nkv
        rows = torch.arange(b, device=self.device)
        keep = torch.arange(length, device=self.device)[None, :] <= positions[:, None]
        mask = keep[:, None, None, :]  # [B, 1, 1, L]; the query "length" axis holds the head group
        cos, sin = self._rope(positions)
        x = self.embed[tokens]
        for i, layer in enumerate(self.layers):
            h = rms_norm(x, layer.ln1, self.eps)
            qkv = layer.qkv(h)
            qk = apply_rope(qkv[:, :(nh + nkv) * d].view(b, nh + nkv, d), cos, sin)  # q and k in one go
            q, k = qk[:, :nh], qk[:, nh:]
            v = qkv[:, (nh + nkv) * d:].view(b, nkv, d)
            kc, vc = cache[i, 0], cache[i, 1]
            kc[rows, :, positions] = k
            vc[rows, :, positions] = v
            # query heads h = kv_head * group + g (HF's repeat_kv order): [B, kv_heads, group, dim]
            att = F.scaled_dot_product_attention(q.view(b, nkv, group, d), kc[:b, :, :length], vc[:b, :, :length],
                                                 attn_mask=mask, scale=self.scale)
            x = x + layer.o(att.reshape(b, nh * d))
            h = rms_norm(x, layer.ln2, self.eps)
            gate, up = layer.gate_up(h).chunk(2, dim=-1)
            x = x + layer.down(F.silu(gate) * up)
        return self.logits(x)
