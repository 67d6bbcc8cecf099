"""Frame sources and result sinks."""
