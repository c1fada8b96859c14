"""The baseline users compare emflow with: the paper's approach in PyTorch, eager, a Python loop over K generators.

The same architecture as ``emflow.Glow`` (ActNorm -> invertible 1x1 conv ->
affine coupling with Conv3x3-ReLU-Conv1x1-ReLU-ZeroConv3x3 and scale
``sigmoid(h + 2)``; squeeze; split with a learned conditional Gaussian) and the
same EM step: responsibilities from the old generators (no grad), the
gamma-weighted loss over all generators, backward, Adam. Benchmark-only: torch
is never a dependency of emflow.
"""
from __future__ import annotations

import math

import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


class ZeroConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(3.0 * self.logs)


class Step(nn.Module):
    def __init__(self, c, hidden):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(c, c))[0])
        ca, cb = c // 2, c - c // 2
        self.ca = ca
        self.net = nn.Sequential(nn.Conv2d(ca, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1),
                                 nn.ReLU(), ZeroConv(hidden, 2 * cb))

    def forward(self, x):
        _, c, h, w = x.shape
        x = (x + self.bias) * torch.exp(self.logs)
        logdet = h * w * self.logs.sum()
        x = nn.functional.conv2d(x, self.weight.view(c, c, 1, 1))
        logdet = logdet + h * w * torch.linalg.slogdet(self.weight)[1]
        xa, xb = x[:, : self.ca], x[:, self.ca:]
        out = self.net(xa)
        shift, raw = out[:, 0::2], out[:, 1::2]
        log_scale = nn.functional.logsigmoid(raw + 2.0)
        xb = (xb + shift) * torch.exp(log_scale)
        return torch.cat([xa, xb], 1), logdet + log_scale.flatten(1).sum(1)


def squeeze(x):
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


class Glow(nn.Module):
    def __init__(self, shape, levels, steps, hidden):
        super().__init__()
        c, h, w = shape
        self.levels = nn.ModuleList()
        self.priors = nn.ModuleList()
        for level in range(levels):
            c = 4 * c
            self.levels.append(nn.ModuleList([Step(c, hidden) for _ in range(steps)]))
            if level < levels - 1:
                self.priors.append(ZeroConv(c // 2, 2 * (c - c // 2)))
                c = c // 2

    def log_prob(self, x):
        logp = torch.zeros(x.shape[0], device=x.device)
        for i, steps in enumerate(self.levels):
            x = squeeze(x)
            for step in steps:
                x, ld = step(x)
                logp = logp + ld
            if i < len(self.priors):
                c = x.shape[1] // 2
                kept, z2 = x[:, :c], x[:, c:]
                h = self.priors[i](kept)
                mean, logs = h[:, 0::2], h[:, 1::2]
                logp = logp + (-0.5 * ((z2 - mean) * torch.exp(-logs)) ** 2 - logs - 0.5 * LOG_2PI).flatten(1).sum(1)
                x = kept
        return logp + (-0.5 * x**2 - 0.5 * LOG_2PI).flatten(1).sum(1)


class GenMMTrainer:
    """K generators and their old copies; one EM training step as the reference code does it."""

    def __init__(self, shape, levels, steps, hidden, num_components, device="cpu"):
        self.gens = [Glow(shape, levels, steps, hidden).to(device) for _ in range(num_components)]
        self.old = [Glow(shape, levels, steps, hidden).to(device) for _ in range(num_components)]
        for g, o in zip(self.gens, self.old):
            o.load_state_dict(g.state_dict())
        self.log_pi = torch.full((num_components,), -math.log(num_components), device=device)
        self.opt = torch.optim.Adam([p for g in self.gens for p in g.parameters()], lr=1e-4, betas=(0.9, 0.9999))

    def step(self, x):
        with torch.no_grad():
            old = torch.stack([o.log_prob(x) for o in self.old], 1) + self.log_pi
            gamma = torch.softmax(old, 1)
        joint = torch.stack([g.log_prob(x) for g in self.gens], 1) + self.log_pi
        loss = -(gamma * joint).sum(1).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_([p for g in self.gens for p in g.parameters()], 5.0)
        torch.nn.utils.clip_grad_norm_([p for g in self.gens for p in g.parameters()], 100.0)
        self.opt.step()
        return loss
