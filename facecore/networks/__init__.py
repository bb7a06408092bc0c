"""Embedding networks, teacher-space heads and training losses, each chosen by name. Imports only
facecore.core."""
