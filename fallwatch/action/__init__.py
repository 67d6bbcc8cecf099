"""Action stage: per-track skeleton windows -> ST-GCN p(fall) -> fall events."""
