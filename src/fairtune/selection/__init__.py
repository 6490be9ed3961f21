"""Selection: the search over each method's settings (grid, optuna or successive halving), the
rules that choose on held-out data, the result rows and records, and ``compare``. See
ARCHITECTURE.md."""
