"""Where a run's figures come from: the device, its clock, and a label for tables."""
from __future__ import annotations

import dataclasses
import os
import time

import torch

from ..data.datasets import Dataset


def check_device(device: str) -> str:
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but no CUDA GPU is available")
    return device


def to_device(data: Dataset, device: str) -> Dataset:
    if device == "cpu":
        return data
    return dataclasses.replace(data, x=data.x.to(device), y=data.y.to(device),
                               x_test=data.x_test.to(device), y_test=data.y_test.to(device))


def clock(device: str) -> float:
    """perf_counter after the device has finished its queued work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter()


def device_name(device: str = "cpu") -> str:
    """A label for figures: 'cpu (N cores)' or 'cuda:0 (GPU name)'."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores)"
