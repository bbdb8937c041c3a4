"""From a raw record to readings or a dead letter: payloads, hex, frames, the registry's topology (value
objects, store and cache) and the decoded record format. Everything but the store and the cache is pure."""
