"""Streaming and long audio: a port compared chunk by chunk, the way apps run it.

Two pipelines, each with one entry point taking a request, an `emit` callback and a cancel event:
`run_stream` (cache-aware models: NeMo's own chunked loop against a converted streaming encoder step with its
caches as explicit inputs and outputs) and `run_windows` (offline models: fixed windows with overlap, tokens
merged by time, seams compared with NeMo's full-context transcript). Nothing here formats for a screen.
"""
