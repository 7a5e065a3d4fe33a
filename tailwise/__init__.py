"""Tailwise: feature-store-centric personalization.

The shared package every stage imports: typed settings and parameters (`settings`,
`params`), the canonical data contract (`schema`), the synthetic data source
(`synthetic`), ingestion with cleaning and privacy (`ingest`, `privacy`) and the CLI.
Nothing here does work at import time.
"""

__version__ = "0.1.0"
