"""A pytest plugin for tests/test_dependencies.py: prints each collected test's pytest-timeout marker."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None, None, None]:
    yield  # after every other plugin and conftest has marked the items
    for item in items:
        marker = item.get_closest_marker("timeout")
        print(f"TIMEOUT {item.nodeid} {marker.args[0] if marker else 'default'}")
