"""Entry point Pulumi runs (Pulumi.yaml: `main: infra/`)."""

from infra.program import main

main()
