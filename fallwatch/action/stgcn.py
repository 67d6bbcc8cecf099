"""ST-GCN: graph convolution over the skeleton, temporal convolution over time (Yan et al., AAAI 2018).

Input (N, C, T, V, M): C channels per joint (x, y, visibility), T steps, V joints, M people (1 here). A data
BatchNorm, then blocks of [spatial graph conv over the 3 partitions x learnable edge importance -> BN, ReLU ->
temporal conv (kernel 9) -> BN -> dropout] with residuals, global average pooling, a linear head. PP-Human's
configuration is widths 64,64,64,64,128s2,128,128,256s2,256,256 (about 3.1 M parameters); fallwatch ships a
narrower one (see models/stgcn_fall.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fallwatch.action.graph import spatial_partitions

PP_HUMAN_WIDTHS = (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)
PP_HUMAN_STRIDES = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)


@dataclass(frozen=True)
class STGCNSpec:
    in_channels: int = 3
    num_classes: int = 2
    widths: tuple[int, ...] = PP_HUMAN_WIDTHS
    strides: tuple[int, ...] = PP_HUMAN_STRIDES
    temporal_kernel: int = 9
    dropout: float = 0.0
    layout: str = "coco"
    centre: int | None = None


class GraphConv(nn.Module):
    def __init__(self, cin: int, cout: int, partitions: int):
        super().__init__()
        self.partitions = partitions
        self.conv = nn.Conv2d(cin, cout * partitions, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        x = self.conv(x).view(n, self.partitions, -1, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, a)


class STGCNBlock(nn.Module):
    def __init__(self, cin: int, cout: int, a: torch.Tensor, stride: int, kernel: int, dropout: float, residual=True):
        super().__init__()
        self.gcn = GraphConv(cin, cout, a.shape[0])
        self.edge_importance = nn.Parameter(torch.ones_like(a))
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(cout), nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual = None
        elif cin == cout and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(nn.Conv2d(cin, cout, 1, (stride, 1)), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        res = 0 if self.residual is None else self.residual(x)
        return self.relu(self.tcn(self.gcn(x, a * self.edge_importance)) + res)


class STGCN(nn.Module):
    """`forward((N, C, T, V, M)) -> logits (N, classes)`."""

    def __init__(self, spec: STGCNSpec = STGCNSpec()):  # noqa: B008 - frozen dataclass
        super().__init__()
        self.spec = spec
        a = torch.from_numpy(spatial_partitions(spec.layout, spec.centre))
        self.register_buffer("A", a)
        v = a.shape[1]
        self.data_bn = nn.BatchNorm1d(spec.in_channels * v)
        blocks, cin = [], spec.in_channels
        for i, (w, s) in enumerate(zip(spec.widths, spec.strides, strict=True)):
            blocks.append(STGCNBlock(cin, w, a, s, spec.temporal_kernel, 0.0 if i == 0 else spec.dropout, i > 0))
            cin = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x).view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block in self.blocks:
            x = block(x, self.A)
        x = x.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)
        return self.head(x)


class STGCNEnsemble(nn.Module):
    """Several ST-GCNs of one spec trained with different seeds; `forward` returns the log of their mean class
    probabilities, so a softmax of it (what the recognizer takes) is exactly the members' average p(fall).

    Why: at the data size here one training run's event F1 on held-out videos moves by ±0.05 with the seed alone
    (docs/benchmarks.md); averaging members removes that lottery at a cost linear in their number.
    """

    def __init__(self, members: list[STGCN]):
        super().__init__()
        if not members or len({m.spec for m in members}) != 1:
            raise ValueError("an ensemble needs one or more members of the same spec")
        self.members = nn.ModuleList(members)
        self.spec = members[0].spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members]).mean(dim=0)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))


def count_macs(model: STGCN, steps: int) -> int:
    """Multiply-accumulates of one forward pass on a (1, C, steps, V, 1) window (convs, graph products, head)."""
    macs = 0
    hooks = []

    def conv_hook(mod, inp, out):
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs += out.numel() * (mod.in_channels // mod.groups) * k

    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
    v = model.A.shape[1]
    with torch.no_grad():
        model.eval()(torch.zeros(1, model.spec.in_channels, steps, v, 1))
    for h in hooks:
        h.remove()
    t = steps
    for block in model.blocks:  # einsum over partitions: K x C x T x V x V per block (before the stride)
        c = block.gcn.conv.out_channels // block.gcn.partitions
        macs += block.gcn.partitions * c * t * v * v
        t = (t + block.tcn[2].stride[0] - 1) // block.tcn[2].stride[0]
    macs += model.head.in_features * model.head.out_features
    return macs
