"""`f2 sink`: decoded readings -> TimescaleDB. The daemon, the pure row formats, the SQL and its writer."""
