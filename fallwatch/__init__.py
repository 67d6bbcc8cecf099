"""fallwatch: per-person fall detection in video (detect -> track -> pose -> action)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy re-exports: `import fallwatch` stays cheap (no torch/ultralytics) until the pipeline is used.
    if name == "Pipeline":
        from fallwatch.pipeline import Pipeline

        return Pipeline
    if name == "load_config":
        from fallwatch.config import load_config

        return load_config
    raise AttributeError(name)


__all__ = ["Pipeline", "__version__", "load_config"]
