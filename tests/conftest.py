"""Shared test settings: quiet TensorFlow, fixture paths."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

DATA_DIR = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """tests/data: the fixtures shipped with the project."""
    return DATA_DIR


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with slow tests run first (each module's tests kept together): under xdist
    the short tests then fill in at the end, instead of two long tests finishing last."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module not in slow_modules)
