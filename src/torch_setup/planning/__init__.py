"""Planning: the steps a plan is made of (steps.py), the plan from facts and recipes (make.py), and what
comes before it: a Python provided, a compiler too old replaced (provide.py)."""
