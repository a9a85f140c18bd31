"""The one comparison pipeline: a `Request` in, plain events out, a `Session` of step results.

Every front end (the headless commands, the app's engine process, corpus runs, recordings, replays, the sweep)
opens through `pipeline.Pipeline` (its reference from `reference`: NeMo or a recording) and runs steps through
the one driver (`driver.run_steps`); the steps are pure functions of a `StepContext` (`components`,
`decoder_chain`, `joint_grid` over `grid`'s chunks, `decode_step`). This package's `__init__`
imports nothing, so a front end can read `request` and `events` (plain data) without loading numpy or a runtime.
"""
