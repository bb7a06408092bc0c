"""The gallery, per-frame recognition, tracking and video input/output behind realtime.py. Imports the
layers below training."""
