"""Experiment (not a benchmark row): the fast backend's decode step under torch.compile on CPU.

The whole decode step (30 layers, weights as frozen parameters so inductor can pre-pack them for oneDNN
and fuse the small ops between matmuls), compiled with ``dynamic=True``, against the eager FastLlama step
at batch 8. Result on the 2-core machine, 2026-11-24 (docs/rollout.md): compile 123 s, argmax equal,
max |logit diff| 1.2e-3; the compiled step ran at 2.4 s against 44 ms eager (recompiling or re-running
constant folding on every call; not debugged further), and a batch-size change cost another 100 s.

    python benchmarks/experiments/decode_compile.py
"""
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

os.environ["TULU_PROGRESS"]="0"
from tulu.models import load_model_and_tokenizer
from tulu.rollout.llama import FastLlama, apply_rope

torch.set_num_threads(2)
import torch._inductor.config as ic

ic.freezing = True
model, tok = load_model_and_tokenizer("embedded", dtype="float32", device="cpu")
eng = FastLlama(model, batch_hint=8)
cfg = model.config
nh, nkv, d = eng.num_heads, eng.num_kv_heads, eng.head_dim
sd = model.state_dict()

class Dec(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.ParameterList(); self.o = nn.ParameterList(); self.gu = nn.ParameterList(); self.down = nn.ParameterList()
        self.ln1 = nn.ParameterList(); self.ln2 = nn.ParameterList()
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            self.qkv.append(nn.Parameter(torch.cat([sd[p+f"self_attn.{n}_proj.weight"] for n in "qkv"]), requires_grad=False))
            self.o.append(nn.Parameter(sd[p+"self_attn.o_proj.weight"].clone(), requires_grad=False))
            self.gu.append(nn.Parameter(torch.cat([sd[p+"mlp.gate_proj.weight"], sd[p+"mlp.up_proj.weight"]]), requires_grad=False))
            self.down.append(nn.Parameter(sd[p+"mlp.down_proj.weight"].clone(), requires_grad=False))
            self.ln1.append(nn.Parameter(sd[p+"input_layernorm.weight"].clone(), requires_grad=False))
            self.ln2.append(nn.Parameter(sd[p+"post_attention_layernorm.weight"].clone(), requires_grad=False))
        self.embed = nn.Parameter(sd["model.embed_tokens.weight"].clone(), requires_grad=False)
        self.norm = nn.Parameter(sd["model.norm.weight"].clone(), requires_grad=False)
    def forward(self, cache, tokens, positions, cos, sin, mask, length: int):
        b = tokens.shape[0]
        rows = torch.arange(b)
        x = self.embed[tokens]
        g = nh // nkv
        for i in range(len(self.qkv)):
            h = F.rms_norm(x, (x.shape[-1],), self.ln1[i], eng.eps)
            qkv = F.linear(h, self.qkv[i])
            qk = apply_rope(qkv[:, :(nh + nkv) * d].view(b, nh + nkv, d), cos, sin)
            q, k = qk[:, :nh], qk[:, nh:]
            v = qkv[:, (nh + nkv) * d:].view(b, nkv, d)
            kc, vc = cache[i, 0], cache[i, 1]
            kc[rows, :, positions] = k
            vc[rows, :, positions] = v
            att = F.scaled_dot_product_attention(q.view(b, nkv, g, d), kc[:b, :, :length], vc[:b, :, :length], attn_mask=mask, scale=eng.scale)
            x = x + F.linear(att.reshape(b, nh * d), self.o[i])
            h = F.rms_norm(x, (x.shape[-1],), self.ln2[i], eng.eps)
            gate, up = F.linear(h, self.gu[i]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, self.down[i])
        x = F.rms_norm(x, (x.shape[-1],), self.norm, eng.eps)
        return F.linear(x, self.embed)

dec = Dec().eval()
B = 8
cache = eng.new_cache(B, 512); cache2 = cache.clone()
tokens = torch.randint(0, 49152, (B,))
pos = torch.randint(150, 170, (B,))
def inputs(p):
    length = int(p.max()) + 1
    keep = torch.arange(length)[None, :] <= p[:, None]
    cos, sin = eng._rope(p)
    return cos, sin, keep[:, None, None, :], length
with torch.inference_mode():
    ref = eng.decode(cache2, tokens, pos)
    cd = torch.compile(dec, dynamic=True)
    t = time.time(); out = cd(cache, tokens, pos, *inputs(pos)); print("compile s", time.time() - t)
    print("maxdiff", (out - ref).abs().max().item(), "argmax equal", bool((out.argmax(-1) == ref.argmax(-1)).all()))
    for i in range(3): cd(cache, tokens, pos + i, *inputs(pos + i))
    t = time.perf_counter(); n = 30
    for i in range(n): cd(cache, tokens, pos + i, *inputs(pos + i))
    print("compiled step ms", (time.perf_counter() - t) / n * 1e3)
    t = time.perf_counter()
    for i in range(n): eng.decode(cache2, tokens, pos + i)
    print("eager fast step ms", (time.perf_counter() - t) / n * 1e3)
    b4 = tokens[:4]; p4 = pos[:4]
    t = time.time(); cd(cache, b4, p4, *inputs(p4)); print("B=4 call s (recompile?)", time.time() - t)
