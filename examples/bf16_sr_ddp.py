#!/usr/bin/env python3
"""Continues an `srgpt export --format hf` model in pure bf16 with stochastic rounding, on one
GPU or many (PyTorch DistributedDataParallel):

    python3 examples/bf16_sr_ddp.py DIR --corpus FILE [--steps 20] [--lr 3e-4]
    torchrun --nproc_per_node 8 examples/bf16_sr_ddp.py DIR --corpus FILE [--optimizer torchao|own]

The weights, gradients and Adam state are bf16; each update is computed in f32 and written back
with stochastic rounding: torchao's AdamW with bf16_stochastic_round=True (`--optimizer
torchao`, the default where torchao is installed) or the small AdamW below (`own`). Every
replica draws the same random bits for the same parameter and step, so the replicas, which see
the same averaged gradient, stay bit-identical: the shared randomness the paper's data-parallel
analysis assumes. The own AdamW seeds a generator per (seed, step, parameter), never the rank;
torchao draws its bits from torch's global generator, so every rank seeds that one with the
same --seed and draws from it in the same order (each rank's batches come from a generator of
their own). After training, the ranks compare SHA-256 hashes of their weights and exit 1 if any
differs. srgpt's own SR bits are likewise a pure function of (seed, tensor, step, index).
Saves the result with save_pretrained(DIR-out).
"""
import argparse
import hashlib
import os
import sys

import torch
import torch.distributed as dist
from transformers import GPT2LMHeadModel


def stochastic_round_to_bf16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x (f32) to bf16, rounding up with probability equal to the dropped fraction."""
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, x.shape, dtype=torch.int32, device=x.device, generator=generator)
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)


class AdamWSR(torch.optim.Optimizer):
    """AdamW on bf16 parameters and state, each written back with stochastic rounding."""

    def __init__(self, params, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, seed=0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.seed, self.steps = seed, 0

    @torch.no_grad()
    def step(self):
        self.steps += 1
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for i, p in enumerate(g["params"]):
                if p.grad is None:
                    continue
                gen = torch.Generator(device=p.device).manual_seed(hash((self.seed, self.steps, i)) & 0x7FFFFFFF)
                s = self.state[p]
                if not s:
                    s["m"], s["v"] = torch.zeros_like(p), torch.zeros_like(p)
                grad, w = p.grad.float(), p.float()
                m = s["m"].float().mul_(b1).add_(grad, alpha=1 - b1)
                v = s["v"].float().mul_(b2).addcmul_(grad, grad, value=1 - b2)
                m_hat, v_hat = m / (1 - b1 ** self.steps), v / (1 - b2 ** self.steps)
                w = w - g["lr"] * (m_hat / (v_hat.sqrt() + g["eps"]) + g["weight_decay"] * w)
                p.copy_(stochastic_round_to_bf16(w, gen))
                s["m"].copy_(stochastic_round_to_bf16(m, gen))
                s["v"].copy_(stochastic_round_to_bf16(v, gen))


def main():
    a = argparse.ArgumentParser()
    a.add_argument("folder")
    a.add_argument("--corpus", required=True)
    a.add_argument("--steps", type=int, default=20)
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--lr", type=float, default=3e-4)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--optimizer", choices=["auto", "torchao", "own"], default="auto",
                   help="torchao's AdamW, the AdamW below, or torchao's where installed (auto)")
    args = a.parse_args()
    # the same global generator state on every rank: torchao's rounding draws from it
    torch.manual_seed(args.seed)

    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")

    model = GPT2LMHeadModel.from_pretrained(args.folder, torch_dtype=torch.bfloat16).to(device)
    vocab = model.config.to_dict()["srgpt"]["vocab"]
    byte_id = {b: i for i, b in enumerate(vocab)}
    data = open(args.corpus, "rb").read()
    ids = torch.tensor([byte_id[b] for b in data if b in byte_id], dtype=torch.long)
    if len(ids) != len(data):
        raise SystemExit("the corpus has bytes outside the model's vocabulary")
    ctx = model.config.n_positions
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = None
    if args.optimizer in ("auto", "torchao"):
        try:
            from torchao.optim import _AdamW

            opt = _AdamW(model.parameters(), lr=args.lr, bf16_stochastic_round=True)
        except ImportError:
            if args.optimizer == "torchao":
                raise SystemExit("--optimizer torchao: torchao is not installed (pip install torchao)")
    if opt is None:
        opt = AdamWSR(model.parameters(), lr=args.lr, seed=args.seed)
    if rank == 0:
        print(f"optimizer: {type(opt).__module__}.{type(opt).__name__}", flush=True)
    for step in range(args.steps):
        g = torch.Generator().manual_seed(args.seed * 1_000_003 + step * 97 + rank)
        starts = torch.randint(0, len(ids) - ctx - 1, (args.batch,), generator=g)
        x = torch.stack([ids[s:s + ctx] for s in starts]).to(device)
        y = torch.stack([ids[s + 1:s + ctx + 1] for s in starts]).to(device)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rank == 0:
            print(f"step {step + 1} loss {loss.item():.4f}", flush=True)
    identical = True
    if distributed:
        # every rank's weights, bit for bit: the replicas must not have drifted apart
        digest = hashlib.sha256()
        for name, tensor in model.module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        hashes = [None] * dist.get_world_size()
        dist.all_gather_object(hashes, digest.hexdigest())
        identical = len(set(hashes)) == 1
        if rank == 0:
            if identical:
                print(f"replicas identical: {len(hashes)} ranks, weights sha256 {hashes[0]}", flush=True)
            else:
                print("replicas differ: " + ", ".join(f"rank {r} {h}" for r, h in enumerate(hashes)), flush=True)
    if rank == 0 and identical:
        (model.module if distributed else model).save_pretrained(args.folder.rstrip("/") + "-out")
    if distributed:
        dist.destroy_process_group()
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
