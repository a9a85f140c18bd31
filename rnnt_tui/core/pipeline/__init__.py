"""The one comparison pipeline: a `Request` in, plain events out, a `Session` of step results.

Every front end (the headless commands, the app's engine process, corpus runs, replays) drives
`pipeline.Pipeline`; the steps are pure functions of a `StepContext` (`components`, `decoder_chain`, `joint_grid`,
`decode_step`). This package's `__init__` imports nothing, so a front end can read `request` and `events` (plain
data) without loading numpy or a runtime.
"""
