"""One module per runtime's profiler, each named by an entry of
:data:`quantbench.measure.profile.PROFILERS` and imported when a variant of that runtime
is first profiled.

A profiler module defines ``profile(module, inputs, runs) -> list[OpTimes]``: the
artifact's callable (``Artifact.module``) run on ``inputs`` about ``runs`` times (fewer
when slow: :func:`~quantbench.measure.profile.enough`), after one untimed pass, with one
:class:`~quantbench.measure.profile.OpTimes` per pass: seconds per operator name (as the
runtime names it; :data:`~quantbench.measure.profile.KIND_RULES` sorts names into kinds)
and the pass's wall time. It runs with the runtime's own settings (threads), apart from
timing, and imports its runtime lazily.

- :mod:`~quantbench.measure.profilers.torch_ops`: ``torch.profiler``, every torch runtime;
- :mod:`~quantbench.measure.profilers.onnxruntime_nodes`: ONNX Runtime's session
  profiling (node kernel times).

A runtime added later is one module here and one ``PROFILERS`` entry: ExecuTorch's from
its ETDump (``executorch.devtools.Inspector``: each delegate and operator event's time),
OpenVINO's from its performance counters (``PERF_COUNT: YES`` when compiling, then
``InferRequest.get_profiling_info()``: each node's ``real_time`` and ``node_type``).
"""
