"""The platform's Kafka topics and small helpers over consumed records (coordinates, offsets, headers, lag)."""
