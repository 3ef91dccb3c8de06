"""The package's HTML QA report in a real headless browser (Debian ``chromium``): the page is
self-contained (nothing fetched from elsewhere) and its three shaded views are drawn."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from app.security.package.format import QA_REPORT_HTML
from app.workflow import package, review
from tests.review.conftest import CANARY, store_lineage

_WINDOW = (1200, 1800)


def _chromium() -> str:
    """The browser; under CI=true a missing one fails the test instead of skipping it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    msg = "chromium (Debian chromium) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _run(browser: str, page: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--user-data-dir=" + str(page.parent / "profile"), *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _views(shot: Path) -> list[np.ndarray]:
    """The shaded views in a screenshot: large regions in the report's fill colours (grey
    with blue at 0.9 of red and green), each as the red channel of its pixels."""
    rgb = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    fill = (abs(r - g) <= 2) & (r - b >= 3) & (r >= 40) & (r <= 240)
    labels, count = ndimage.label(ndimage.binary_closing(fill, iterations=2))
    sizes = ndimage.sum(fill, labels, range(1, count + 1))
    big = [i + 1 for i, s in enumerate(sizes) if s > 5000]
    return [r[(labels == i) & fill] for i in big]


def test_the_packaged_qa_report_shows_its_views_in_a_headless_browser(
    people, canary_case, tmp_path
):
    browser = _chromium()
    version = store_lineage(canary_case, "tess")
    review.approve(people["rafael"], canary_case, version, comment="fine")
    drive = tmp_path / "drive"
    drive.mkdir()
    made = package.build(people["tess"], canary_case, out_dir=drive)
    page = made.path / QA_REPORT_HTML
    text = page.read_text("utf-8")
    assert CANARY not in text and canary_case.pseudonym in text
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", text), "fetches something"
    assert text.count("<svg") == 3

    dom = _run(browser, page, "--dump-dom").stdout
    assert dom.count("<figcaption>") == 3 and "PASS" in dom
    shot = tmp_path / "qa.png"
    _run(browser, page, f"--screenshot={shot}", f"--window-size={_WINDOW[0]},{_WINDOW[1]}")
    assert Image.open(shot).size == _WINDOW
    views = _views(shot)
    assert len(views) == 3, f"{len(views)} views drawn"
    for shade in views:  # a shaded sphere 240 px wide: lit centre, darker rim
        assert abs(shade.size - np.pi * 120**2) < 0.05 * np.pi * 120**2
        assert shade.std() > 20 and shade.max() - shade.min() > 100
