"""Development tool: simulated F2 controllers publishing real MQTT traffic, with a ledger of what the broker
acknowledged. It is the platform's oracle in tests and the benchmark's load, so it shares no code with the
platform's decoding: `catalog` (templates, datapoints, the sample wiring, from docs/domain.md), `fleet` (the
sample fleet and generated ones), `values` (value models), `behaviour` (how access and alarm components and
readers report), `frames` (the Modbus frame encoder), `fingerprints` (a scanned card's expected fingerprint),
`endpoints` (devices, topics, payloads, their readings and events), `registry_ids` (the only registry reads:
assigned ids), `ledger`, `reconcile` (the ledger against the database), `mqtt_client`, `identities`
(enrollment), `run` (the publishing loop) and `cli` (`f2 simulate`). Not part of the wheel or the image."""
