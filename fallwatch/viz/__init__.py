"""Drawing results onto frames."""

from fallwatch.viz.draw import annotate

__all__ = ["annotate"]
