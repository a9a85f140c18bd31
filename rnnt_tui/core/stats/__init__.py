"""Comparing two runtimes' outputs: diff statistics (`diff`), output-by-output comparisons (`compare`) and the
result objects of a step (`results`). Pure numpy; imports no runtime and no pipeline. This `__init__` imports
nothing.
"""
