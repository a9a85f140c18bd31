"""Record NeMo's side of a comparison once, replay it anywhere: bundles of recorded reference outputs.

`identify` (a bundle's file names, telling one from a checkpoint; numpy-free), `format` (the files, integrity),
`record` (needs torch and NeMo: run where the checkpoint is), `recorded` (the reference runtime a replay uses),
`facts` (the model's facts from a bundle), `candidates` / `onnx_replay` (the candidate without NeMo), `replay`
(sessions on the comparison pipeline). This `__init__` imports nothing.
"""
