"""What every daemon shares: the run loop (signals, health and metrics endpoints), the supervisor that
restarts a hung worker, and the Prometheus metrics."""
