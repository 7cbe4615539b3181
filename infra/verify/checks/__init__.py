"""The checks `mlkit verify` runs, as a pytest-testinfra suite (fixtures and parameters: infra/verify/plugin.py).

One file per area; each test's docstring says what its pass proves, and is the report's wording.
"""
