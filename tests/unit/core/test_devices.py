"""Which device (core/devices.py): the CPU without torch, a clear error for a device that is not there or not known,
and every choice the app offers accepted by name."""

import pytest

from resnext_gui.core import devices
from resnext_gui.core.errors import DeviceError
from resnext_gui.core.kinds import DEVICE_CHOICES


def test_every_offered_choice_is_understood_and_an_unknown_one_is_named(monkeypatch):
    monkeypatch.setattr(devices, "gpu_possible", lambda: False)  # a machine without a GPU (the light app's case)
    assert str(devices.resolve("cpu")) == "cpu" and str(devices.resolve("auto")) == "cpu"
    for choice in DEVICE_CHOICES:
        try:
            devices.resolve(choice)
        except DeviceError as exc:  # a GPU that is not here: said, never "unknown"
            assert "unknown" not in str(exc) and choice in ("cuda", "mps")
    with pytest.raises(DeviceError, match="unknown device 'tpu': choose auto, cpu, cuda or mps"):
        devices.resolve("tpu")


def test_the_cpu_is_described_with_its_threads():
    text = devices.describe(devices.CPU)
    assert text.startswith("CPU") and "thread" in text
