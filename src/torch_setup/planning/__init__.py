"""Planning: the steps a plan is made of (steps.py), the plan from facts and recipes (make.py), and what
comes before it: a Python provided (provide.py), a compiler too old replaced (compiler.py), and the facts as
those steps leave them (predict.py)."""
