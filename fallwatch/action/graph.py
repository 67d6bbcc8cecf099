"""The skeleton graph and ST-GCN's spatial-configuration partitions (Yan, Xiong and Lin, AAAI 2018).

Each joint's neighbourhood (itself and the joints one bone away) is split in three by distance to a centre joint:
the root itself and neighbours as far from the centre (partition 0), neighbours closer to the centre (centripetal,
1) and farther (centrifugal, 2) - so a convolution can tell "towards the body" from "towards the extremities".
Each partition is column-normalised (A D^-1) as in the reference implementation.
"""

from __future__ import annotations

import numpy as np

# COCO-17 bones. PP-Human's graph has no shoulder-shoulder edge; it is added here so that the two arms meet
# directly rather than through the hips (three hops), which the partition by distance to the centre needs to see
# shoulder height as one level of the body.
COCO_EDGES = (
    (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (5, 11), (6, 12), (11, 13), (12, 14), (13, 15), (14, 16), (11, 12), (5, 6),
)  # fmt: skip
COCO_CENTRE = 11  # left hip, as PP-Human
LAYOUTS = {"coco": (17, COCO_EDGES, COCO_CENTRE)}


def hop_distance(num_nodes: int, edges, max_hop: int = 1) -> np.ndarray:
    adj = np.zeros((num_nodes, num_nodes))
    for i, j in edges:
        adj[i, j] = adj[j, i] = 1
    hop = np.full((num_nodes, num_nodes), np.inf)
    powers = [np.linalg.matrix_power(adj + np.eye(num_nodes), d) for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        hop[powers[d] > 0] = d
    return hop


def spatial_partitions(layout: str = "coco", centre: int | None = None) -> np.ndarray:
    """(3, V, V) normalised adjacency: root, centripetal, centrifugal."""
    num_nodes, edges, default_centre = LAYOUTS[layout]
    centre = default_centre if centre is None else centre
    hop = hop_distance(num_nodes, edges)
    to_centre = hop_distance(num_nodes, edges, max_hop=num_nodes)[:, centre]
    adjacency = (hop <= 1).astype(np.float64)
    degree = adjacency.sum(axis=0)
    normalised = adjacency / degree[None, :]
    parts = np.zeros((3, num_nodes, num_nodes))
    for i in range(num_nodes):
        for j in range(num_nodes):
            if hop[j, i] > 1:
                continue
            if to_centre[j] == to_centre[i]:
                parts[0, j, i] = normalised[j, i]
            elif to_centre[j] > to_centre[i]:
                parts[1, j, i] = normalised[j, i]
            else:
                parts[2, j, i] = normalised[j, i]
    return parts.astype(np.float32)
