"""TorchBackend: environment, device info, train() dispatching to the variant, predict()."""

from __future__ import annotations

from typing import Any

import numpy as np

from backends.base import Backend, BackendError, check_inputs, check_params, check_x
from backends.spec import Schedule, Spec, TrainResult
from backends.torch.compiled_epoch import train_scan
from backends.torch.cuda_graph import train_cuda_graph
from backends.torch.eager_loop import train_eager
from backends.torch.job import CUDA_GRAPH, EAGER, SCAN, Job, Log, tdevice
from backends.torch.model import build_model, load, torch_module

_STATE: dict[str, Any] = {"interop_set": None}  # whether set_num_interop_threads(1) took effect
_PREDICT: dict[tuple, Any] = {}  # (sizes, activation, dtype, device) -> model that predict() loads params into
_TRAIN = {SCAN: train_scan, CUDA_GRAPH: train_cuda_graph, EAGER: train_eager}


def _setup(threads: int | None) -> Any:
    """Import torch and set its thread API from `threads` before first use."""
    torch = torch_module()
    if threads:
        torch.set_num_threads(int(threads))
        if _STATE["interop_set"] is None:
            # Allowed once per process, and only before any inter-op parallel work.
            try:
                torch.set_num_interop_threads(1)
                _STATE["interop_set"] = True
            except RuntimeError:
                _STATE["interop_set"] = False
    return torch


def _nvidia_driver() -> str | None:
    """The NVIDIA kernel driver version (Linux), or None where it cannot be read."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            first = f.readline()
    except OSError:
        return None
    words = [w for w in first.split() if w[:1].isdigit() and "." in w]
    return words[0] if words else None


def _no_tf32(torch: Any) -> None:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


class TorchBackend(Backend):
    framework = "torch"

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch_module().cuda.is_available() else ["cpu"]

    def variant(self, device: str = "cpu") -> str:
        """The variant train() means to run on this device (extra["variant"] says which one did)."""
        if self.mode == "eager":
            return EAGER
        return CUDA_GRAPH if device == "gpu" else SCAN

    def replica_env(self) -> dict[str, str]:
        """inductor probes each vector ISA the CPU advertises by compiling a test library and loading it
        in a Python subprocess, once a process: 12 of the 23 s of this job's warm-up compile (2-core Zen 4,
        torch 2.13). Where that probe here kept every advertised ISA, a replica skipping it
        (TORCHINDUCTOR_VEC_ISA_OK=1, inductor's own switch) picks the same ISA; otherwise it probes too.

        The switch is part of inductor's FX graph and AOTAutograd cache keys: this process sets it too, for
        the networks it compiles next, or every replica missed both caches and compiled each network again
        (43 s of a torch replica's 55, default run of 2026-12-07, Zen 4)."""
        import sys

        if "torch._inductor.cpu_vec_isa" not in sys.modules:  # nothing compiled in this process
            return {}
        from torch._inductor import cpu_vec_isa as isa

        try:
            flags = isa.x86_isa_checker()
            advertised = [str(v) for v in isa.supported_vec_isa_list if all(f in flags for f in str(v).split())]
            same = [str(v) for v in isa.valid_vec_isa_list()] == advertised
        except (AttributeError, OSError):  # another torch, or not x86: let the replica probe
            return {}
        if not same:
            return {}
        from torch._inductor import config

        config.cpp.vec_isa_ok = True
        return {"TORCHINDUCTOR_VEC_ISA_OK": "1"}

    def thread_settings(self) -> dict:
        torch = _setup(self.threads)
        return {
            "threads": self.threads,
            "torch_num_threads": torch.get_num_threads(),
            "torch_num_interop_threads": torch.get_num_interop_threads(),
            "interop_set_by_adapter": _STATE["interop_set"],
            "variant": self.variant("cpu"),
        }

    def device_info(self, device: str) -> dict:
        self.check_device(device)
        if device != "gpu":
            return {"device": device}
        torch = torch_module()
        props = torch.cuda.get_device_properties(0)
        return {
            "device": device,
            "name": torch.cuda.get_device_name(0),
            "compute_capability": "{}.{}".format(*torch.cuda.get_device_capability(0)),
            "total_memory": int(props.total_memory),
            "cuda_runtime": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()),
            "driver": _nvidia_driver(),
        }

    def peak_device_memory(self, device: str) -> int | None:
        if device != "gpu" or "gpu" not in self.devices():
            return None
        return int(torch_module().cuda.max_memory_allocated())

    def check_epsilon(self, spec: Spec) -> None:
        """torch.optim's Adam adds epsilon to sqrt(v_hat): the "standard" placement only."""
        if spec.optimizer.name == "adam" and spec.optimizer.epsilon != "standard":
            raise BackendError(
                f"backend {self.name!r} trains Adam with epsilon 'standard' only (added to sqrt(v_hat), torch's "
                f"placement), not {spec.optimizer.epsilon!r}: use epsilon 'standard', or a backend with 'hat' "
                "(numpy, tensorflow, jax, keras-*)"
            )

    def train(
        self,
        spec: Spec,
        X: np.ndarray,
        Y: np.ndarray,
        init_params: list[np.ndarray],
        schedule: Schedule,
        device: str = "cpu",
        record_params: bool = False,
    ) -> TrainResult:
        self.check_device(device)
        X, Y = check_inputs(spec, X, Y, init_params, schedule)
        self.check_epsilon(spec)
        torch = _setup(self.threads)
        if device == "gpu":
            _no_tf32(torch)
        variant = self.variant(device)
        dt, dev = getattr(torch, spec.dtype), tdevice(device)
        job = Job(
            spec=spec,
            X=torch.as_tensor(X, dtype=dt).to(dev),
            Y=torch.as_tensor(Y, dtype=dt).to(dev),
            orders=torch.as_tensor(schedule.orders, dtype=torch.int64).to(dev),
            init_params=init_params,
            schedule=schedule,
            device=device,
            log=Log(torch, device, record_params),
            extra={"variant": variant, "fallback": None},
        )
        result = _TRAIN[variant](torch, job)
        result.extra.update(job.extra)
        return result

    def predict(self, spec: Spec, params: list[np.ndarray], X: np.ndarray, device: str = "cpu") -> np.ndarray:
        self.check_device(device)
        check_params(spec, params)
        X = check_x(spec, X)
        torch = _setup(self.threads)
        if device == "gpu":
            _no_tf32(torch)
        dt, dev = getattr(torch, spec.dtype), tdevice(device)
        key = (tuple(spec.layer_sizes), spec.activation, spec.dtype, device)
        model = _PREDICT.get(key)
        if model is None:
            model = _PREDICT[key] = build_model(torch, spec, dev, dt)
        load(torch, model, params)
        with torch.inference_mode():
            z = model(torch.as_tensor(X, dtype=dt).to(dev))
            if spec.head == "sigmoid":
                z = torch.sigmoid(z)
            elif spec.head == "softmax":
                z = torch.softmax(z, dim=1)
            return z.cpu().numpy().astype(spec.dtype, copy=False)
