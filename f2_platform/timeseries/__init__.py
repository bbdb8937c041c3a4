"""The time-series store's lifecycle as pure code: edition detection, aggregate and storage-policy SQL.

Nothing here knows about Dagster; the assets under f2_platform/defs/ run these builders through the
`timescale` resource, and the unit tests check them without a database.
"""
