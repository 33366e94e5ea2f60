"""The base layer: errors, atomic writes, the name registry, paths, device and thread checks, the
YAML reader, CPU-kernel pinning. Imports nothing else of the package."""
