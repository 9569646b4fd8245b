"""The host seam: the real host (system.py) and captured ones (replay.py)."""
