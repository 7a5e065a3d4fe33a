"""Feature computation: clean tables -> Parquet feature tables for the Feast repo.

`build.build_features(clean, out, FeaturesParams())` writes user_profile, user_daily,
item_catalog, item_daily and user_realtime (see build.py for the flow); `realtime.
realtime_state` is the one definition of per-event state shared with the online path.
Import the submodules directly: this package does no work and pulls in nothing at import.
"""
