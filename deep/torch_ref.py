"""The PyTorch reference for ``deep.benchmark``: the same ResNet / DenseNet + SCL training step
in PyTorch.

``torch_resnet`` mirrors ``deep.models.ResNet`` (3x3 stem, no max-pool, BasicBlocks, no ReLU
after the last residual sum, ReLU on the pooled features); ``torch_densenet`` mirrors
``deep.models.DenseNet`` (3x3 stem, BN-ReLU-Conv3x3 dense layers without bottleneck, BN-ReLU +
1x1 conv + 2x2 average-pool transitions without compression, final BN without ReLU, global
average pool, ReLU on the pooled features). ``bench_torch`` adds ``deep.augment`` (pad-4
random crop and flip on the device, two views), the SC loss with ``reduction="mean"`` (as
``ufm.scl_loss``) and SGD(momentum 0.9, weight decay 5e-4). On a GPU it runs as one would
tune it by hand: bf16 autocast, ``channels_last``, cuDNN autotuning.

PyTorch is imported on first use, so this module imports (and its doctest runs) without it.

>>> callable(bench_torch) and callable(torch_resnet) and callable(torch_densenet)
True
"""

from __future__ import annotations

import functools
import time
from typing import Any, Sequence

__all__ = ["torch_resnet", "torch_densenet", "scl_loss_torch", "bench_torch", "bench_conv_layers_torch"]


@functools.lru_cache(maxsize=None)
def _resnet_class():
    """The PyTorch ResNet class (defined on first use: importing torch is deferred)."""
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, last: bool):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = nn.Identity()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))
            self.last = last

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out)) + self.short(x)
            return out if self.last else F.relu(out)

    class TorchResNet(nn.Module):
        def __init__(self, stage_sizes: Sequence[int], width: int, in_channels: int, relu: bool):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU())
            blocks, cin = [], width
            for s, n in enumerate(stage_sizes):
                for b in range(n):
                    cout = width * 2**s
                    last = s == len(stage_sizes) - 1 and b == n - 1
                    blocks.append(Block(cin, cout, 2 if (s > 0 and b == 0) else 1, last))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.relu = relu

        def forward(self, x):
            h = self.blocks(self.stem(x)).mean(dim=(2, 3))
            return F.relu(h) if self.relu else h

    return TorchResNet


def torch_resnet(stage_sizes: Sequence[int] = (2, 2, 2, 2), width: int = 64, in_channels: int = 3,
                 relu: bool = True):
    """CIFAR ResNet (``torch.nn.Module``) returning pooled features, ReLU on them if ``relu``."""
    return _resnet_class()(tuple(stage_sizes), width, in_channels, relu)


@functools.lru_cache(maxsize=None)
def _densenet_class():
    """The PyTorch DenseNet class (defined on first use: importing torch is deferred)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class DenseLayer(nn.Module):
        def __init__(self, cin: int, growth: int):
            super().__init__()
            self.bn = nn.BatchNorm2d(cin)
            self.conv = nn.Conv2d(cin, growth, 3, 1, 1, bias=False)

        def forward(self, x):
            return torch.cat([x, self.conv(F.relu(self.bn(x)))], dim=1)

    class Transition(nn.Module):
        def __init__(self, c: int):
            super().__init__()
            self.bn = nn.BatchNorm2d(c)
            self.conv = nn.Conv2d(c, c, 1, 1, 0, bias=False)

        def forward(self, x):
            return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)

    class TorchDenseNet(nn.Module):
        def __init__(self, depth: int, growth: int, stem: int, n_blocks: int, in_channels: int,
                     relu: bool):
            super().__init__()
            mods, c = [nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)], stem
            for blk in range(n_blocks):
                for _ in range((depth - 4) // n_blocks):
                    mods.append(DenseLayer(c, growth))
                    c += growth
                if blk < n_blocks - 1:
                    mods.append(Transition(c))
            mods.append(nn.BatchNorm2d(c))
            self.features = nn.Sequential(*mods)
            self.relu = relu

        def forward(self, x):
            h = self.features(x).mean(dim=(2, 3))
            return F.relu(h) if self.relu else h

    return TorchDenseNet


def torch_densenet(depth: int = 40, growth: int = 12, stem: int = 16, in_channels: int = 3,
                   relu: bool = True, n_blocks: int = 3):
    """CIFAR DenseNet (``torch.nn.Module``) as ``deep.models.DenseNet``, returning pooled features.

    Args:
        depth: network depth; ``(depth - 4) // n_blocks`` dense layers per block.
        growth: outputs of each dense layer.
        stem: outputs of the 3x3 stem convolution.
        in_channels: image channels.
        relu: a ReLU on the pooled features (``deep.models.FeatureNet``'s ``relu``).
        n_blocks: dense blocks.

    Returns:
        The module; its output is ``(B, stem + n_blocks * ((depth - 4) // n_blocks) * growth)``.
    """
    return _densenet_class()(depth, growth, stem, n_blocks, in_channels, relu)


def scl_loss_torch(h, y, tau: float):
    """SC loss of one batch, mean over anchors with a positive (``ufm.scl_loss`` "mean")."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(h.float(), dim=1)
    s = z @ z.T / tau
    eye = torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    lse = torch.logsumexp(s.masked_fill(eye, float("-inf")), dim=1)
    pos = (y[:, None] == y[None, :]) & ~eye
    n_pos = pos.sum(1)
    pos_mean = s.masked_fill(~pos, 0.0).sum(1) / n_pos.clamp(min=1)
    has = n_pos > 0
    return torch.where(has, lse - pos_mean, torch.zeros_like(lse)).sum() / has.sum().clamp(min=1)


def _augment(x, mean, std, pad: int):
    """Random crop (zero padding ``pad``) and flip per image, then standardize (on the device)."""
    import torch
    import torch.nn.functional as F

    b, c, hh, ww = x.shape
    dev = x.device
    xp = F.pad(x.float(), (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), device=dev)
    rows = (oy[:, None] + torch.arange(hh, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(ww, device=dev))[:, None, None, :]
    xp = xp[torch.arange(b, device=dev)[:, None, None, None],
            torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = torch.rand(b, device=dev) < 0.5
    xp = torch.where(flip[:, None, None, None], xp.flip(3), xp)
    return (xp / 255.0 - mean) / std


def bench_torch(*, batch_size: int, steps: int, warmup: int = 3,
                stage_sizes: Sequence[int] = (2, 2, 2, 2), width: int = 64,
                densenet: Sequence[int] | None = None,
                image_shape: Sequence[int] = (32, 32, 3), pool: int = 4096,
                bf16: bool | None = None, tau: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Images/s of the PyTorch training step (data on the device, two views per image).

    The network is ``torch_resnet(stage_sizes, width)``, or ``torch_densenet(depth, growth,
    stem)`` when ``densenet = (depth, growth, stem)`` is given."""
    import torch

    torch.manual_seed(seed)
    cuda = torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    bf16 = cuda if bf16 is None else bf16
    if cuda:
        torch.backends.cudnn.benchmark = True
    h, w, c = image_shape
    images = torch.randint(0, 256, (pool, c, h, w), dtype=torch.uint8, device=dev)
    labels = torch.randint(0, 10, (pool,), device=dev)
    mean = torch.full((1, c, 1, 1), 0.5, device=dev)
    std = torch.full((1, c, 1, 1), 0.25, device=dev)
    if densenet is None:
        model = torch_resnet(stage_sizes, width, c)
    else:
        depth, growth, stem = densenet
        model = torch_densenet(depth, growth, stem, c)
    model = model.to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

    def step():
        idx = torch.randint(0, pool, (batch_size,), device=dev)
        x, y = images[idx], labels[idx]
        v = torch.cat([_augment(x, mean, std, 4), _augment(x, mean, std, 4)])
        v = v.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            feats = model(v)
        loss = scl_loss_torch(feats, y.repeat(2), tau)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    loss = None
    for _ in range(warmup):
        loss = step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t0
    return {
        "framework": "torch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": "bfloat16 autocast" if bf16 else "float32",
        "batch_size": batch_size,
        "seeds": 1,
        "steps": steps,
        "seconds": seconds,
        "images_per_s": batch_size * steps / seconds,
        "step_ms": 1e3 * seconds / steps,
        "final_loss": float(loss.detach()),
        "params": sum(p.numel() for p in model.parameters()),
    }


def bench_conv_layers_torch(layers: Sequence[tuple[int, int, int, int, int]], *, batch: int,
                            repeats: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """``deep.benchmark.bench_conv_layers`` in PyTorch (float32, ``channels_last`` as in
    ``bench_torch``): ``F.conv2d``, ``torch.nn.grad.conv2d_input`` / ``conv2d_weight``."""
    import torch
    import torch.nn.functional as F

    from ufm.core.timing import best_of

    torch.manual_seed(seed)

    def best(f) -> float:  # PyTorch on the CPU: synchronous
        return 1e3 * best_of(f, repeats, sync=lambda r: r)

    rows = []
    for h, cin, cout, k, s in layers:
        p = k // 2
        x = torch.randn(batch, cin, h, h).contiguous(memory_format=torch.channels_last)
        w = torch.randn(cout, cin, k, k)
        g = torch.ones_like(F.conv2d(x, w, stride=s, padding=p))
        rows.append({"layer": [h, cin, cout, k, s],
                     "fwd_ms": best(lambda: F.conv2d(x, w, stride=s, padding=p)),
                     "dx_ms": best(lambda: torch.nn.grad.conv2d_input(x.shape, w, g, stride=s, padding=p)),
                     "dw_ms": best(lambda: torch.nn.grad.conv2d_weight(x, w.shape, g, stride=s, padding=p))})
    return rows
