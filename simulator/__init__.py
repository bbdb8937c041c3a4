"""Development tool: simulated F2 controllers publishing real MQTT traffic, with a ledger of what the broker
acknowledged. It is the platform's oracle in tests and the benchmark's load, so it keeps its own frame
encoder and fleet definitions. Not part of the wheel or the image."""
