"""The platform layer: Pulumi components written once, over the ClusterTarget contract alone.

(Not named `platform`: Pulumi runs `main: infra/` with that folder on sys.path, where a
`platform` package would shadow Python's own `platform` module.)
"""
