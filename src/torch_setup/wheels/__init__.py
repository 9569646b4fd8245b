"""Which torch wheel: the target's tags (tags.py), the CUDA/ROCm variants (variants.py), the indexes
(indexes.py), the choice (choose.py), and uv's own wheel (uv.py)."""
