"""Base layer: registries, settings, paths, runtime, atomic files, checkpoints, preprocessing, the
model zoo. Imports nothing else from facecore."""
