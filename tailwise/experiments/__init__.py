"""Experiments: definitions, assignment, exposures, attribution, statistics and bandits.

Two tables connect the request path to the analysis; both are plain DataFrames (Parquet
on disk) with these columns, and every module here reads or writes them by these names:

    exposures   request_id (str), user_id (str, pseudonymised), experiment (str),
                variant (str), propensity (float, the probability the user had of getting
                this variant at that moment), slot (str or null), timestamp (UTC)
    outcomes    request_id (str or null), user_id, experiment, variant, event_type
                (the contract's event types), revenue (float, 0 when none), position
                (int or null), timestamp (UTC): events attributed to an exposure

Modules:
    definitions, assignment, attribution, posteriors   experiments as code and the
                                                         request path's side
    stats, bandit, simulation                            the statistics, Thompson
                                                         sampling and simulated shoppers
"""
