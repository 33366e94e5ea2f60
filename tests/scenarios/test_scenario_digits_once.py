"""The digits are decoded once per process: every run of a sweep, and the data fingerprint of
each, builds the digits source, and rebuilding it cost ~0.5 s each time."""

from __future__ import annotations

import numpy as np
import pytest

from avalanche_clip.scenarios import build_scenario
from avalanche_clip.scenarios.digits import digit_images


def test_digit_images_are_built_once_and_shared_read_only():
    first, labels = digit_images(40)
    again, labels_again = digit_images(40)
    assert again is first  # not decoded again and labels_again == labels and labels_again is not labels
    with pytest.raises(ValueError, match="read-only"):
        first[0, 0, 0, 0] = 1
    assert first.shape == (1797, 40, 40, 3) and digit_images(48)[0].shape[1] == 48


def test_streams_of_two_builds_hold_the_same_writable_images():
    a, b = (build_scenario("digits", n_experiences=5, seed=0, image_size=40) for _ in range(2))
    item_a, item_b = a.train_stream[2].dataset[3], b.train_stream[2].dataset[3]
    assert np.array_equal(np.asarray(item_a[0]), np.asarray(item_b[0])) and item_a[1] == item_b[1]
