"""Recipes: the data files (recipes/*.toml) loaded and validated (load.py), refusals (refuse.py), and where a
recipe becomes argv for one host (resolve.py)."""
