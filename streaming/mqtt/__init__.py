"""MQTT for the bridge: the v5 wire format, the client session over one socket, and the controllers' topic
grammar. Pure except for `session`, which owns the socket."""
