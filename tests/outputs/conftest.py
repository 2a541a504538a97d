"""Fixtures of the output tests: a headless Chromium per test module, for the report's pages."""

from __future__ import annotations

import pytest

from tests.outputs.test_report import Browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chrome = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield chrome
    chrome.close()
