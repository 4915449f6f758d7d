"""PyTorch backend, one module per concern; `backend.TorchBackend` is the registry's class.

The code path that ran is TrainResult.extra["variant"]:
- "torch.compile-scan" (mode compiled, CPU; compiled_epoch.py): one torch.compile'd call per epoch, so
  per-step Python and dispatch overhead, which dominates small models, is paid once per epoch.
- "cuda-graph-step" (mode compiled, GPU; cuda_graph.py): the step captured once as a CUDA graph and
  replayed per full batch, so kernel launches are not paid per step. Written for CUDA, not run on a GPU yet.
- "eager-loop" (mode eager; eager_loop.py): the per-batch loop a tutorial writes.
- "fused-eager-loop" (eager_loop.py): the fallback when torch.compile fails; the fastest path that needs
  no compiler. extra["fallback"] then says why.

Same math as backends/numpy_reference.py: weights (in, out) in the spec, transposed into and out of
Linear.weight (out, in); losses from logits; Adam with eps outside sqrt(v_hat). In float64, torch.optim's
Adam/SGD agree with those formulas to rounding (not bit-for-bit: they use lerp and fused multiply-adds),
the written-out update of the compiled epoch bit-for-bit for SGD.
torch is imported lazily (model.torch_module()), so these modules import without it.
"""
