"""Core ML ports of a NeMo transducer: export wrappers, conversion, reading packages, and compute plans.

`wrappers` holds plain torch modules with fixed I/O contracts (the tensor names of `core.components`, batch 1,
int32 lengths and token ids) that trace to exactly what NeMo's eager components compute. `convert` traces them and
runs coremltools into cached `.mlpackage`s with a flexible time axis; `spec` reads any package's inputs, outputs
and metadata on any OS and matches a folder of packages (ours or the common parakeet-export layout) to components;
`plan` asks Core ML (macOS only) where each op runs. The runtime that predicts with them is
`core.runtimes.coreml_runtime`. Conversion and spec reading work on Linux; predictions, compiling and compute
plans need macOS and raise `RuntimeUnavailableError` elsewhere.
"""
