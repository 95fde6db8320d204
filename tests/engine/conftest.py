"""A tiny synthetic training set (images + jsonl annotations) for engine tests."""

import pytest
from tiny_faces import write_tiny_faces


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_tiny_faces(tmp_path_factory.mktemp("tiny"), count=6)
