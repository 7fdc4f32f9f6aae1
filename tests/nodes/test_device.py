"""nodes.device: ComfyUI's Cancel reaches the library between batches."""

from __future__ import annotations

import comfy.model_management
import numpy as np
import pytest


def test_cancel_between_faces_stops_promptly(pack, lib, fake, monkeypatch):
    interrupted = comfy.model_management.InterruptProcessingException
    checks = []

    def throw_if_interrupted():
        checks.append(1)
        if len(checks) == 2:  # the user presses Cancel while the first face is being restored
            raise interrupted()

    monkeypatch.setattr(comfy.model_management, "throw_exception_if_processing_interrupted", throw_if_interrupted)
    model = fake()
    crops = np.zeros((6, 512, 512, 3), np.uint8)
    with pytest.raises(interrupted):
        lib.restore.restore_faces(model, crops, batch_size=1, check_interrupt=pack.nodes.device.check_interrupt)
    assert model.module.batches == [1]
