"""codeformer.geometry: working sizes, the official enlargement of small sources, capped for long strips."""

from __future__ import annotations

import pytest

from codeformer.geometry import MAX_WORKING_SIDE, working_scale, working_size


@pytest.mark.parametrize(("size", "scale", "working"), [
    ((1, 1), 512.0, (512, 512)),
    ((8, 8), 64.0, (512, 512)),
    ((310, 491), 512 / 310, (512, 811)),  # a normal small photo: official enlargement
    ((64, 512), 8.0, (512, 4096)),  # 8:1, the longest strip enlarged as officially
    ((300, 3000), MAX_WORKING_SIDE / 3000, (410, 4096)),  # longer: enlarged until the long side is 4096
    ((16, 4096), 1.0, (16, 4096)),  # officially 512x131072
    ((4096, 16), 1.0, (4096, 16)),
    ((645, 1204), 1.0, (645, 1204)),  # short side >= 512: never enlarged
])
def test_working_scale_is_official_up_to_8_to_1_and_capped_beyond(size, scale, working):
    assert working_scale(size) == pytest.approx(scale)
    assert working_size(size) == working
