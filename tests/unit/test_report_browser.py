"""envkit report rendered by a real headless Chromium (Debian's chromium + chromium-driver,
driven by selenium): the grid's cells hold the records' values and the screenshot is not blank.

The records are the real one in tests/data/records plus a copy on another host kind that
regressed, so the grid has two columns and a regression row.
"""

from __future__ import annotations

import copy
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from envkit import records, report_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
DATA = Path(__file__).resolve().parents[1] / "data" / "records"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs chromium and chromedriver (apt-get install chromium chromium-driver)",
)


def two_records() -> list[dict]:
    real = json.loads(next(DATA.glob("*.json")).read_text())
    h100 = copy.deepcopy(real)
    h100["id"] = real["id"][:-8] + "0000aaaa"
    h100["host"]["kind"] = "NVIDIA H100 80GB HBM3"
    h100["status"] = "fail"
    h100["failed"] = ["regression"]
    h100["regressions"] = [
        {
            "check": "throughput.fp32.b8",
            "detail": "fp32 batch 8: 1.0 images/s against 3.3",
            "baseline": 3.3,
            "value": 1.0,
            "limit": 3.1,
        }
    ]
    for record in (real, h100):
        records.validate(record)
    return [real, h100]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    profile = tempfile.mkdtemp(prefix="envkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_report_grid_renders_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    found = two_records()
    page = report_html.write_report(found, tmp_path)
    assert "http://" not in page.read_text().replace("http://www.w3.org", "")
    browser.get(page.as_uri())
    cells = browser.find_elements(By.CSS_SELECTOR, "#grid td.cell")
    by_host = {c.get_attribute("data-host"): c for c in cells}
    assert set(by_host) == {found[0]["host"]["kind"], "NVIDIA H100 80GB HBM3"}
    cpu = by_host[found[0]["host"]["kind"]]
    accuracy = found[0]["bench"]["report"]["convergence"]["accuracy"]
    assert cpu.get_attribute("data-status") == "pass"
    assert cpu.find_element(By.CLASS_NAME, "accuracy").text == f"{accuracy:.4f}"
    assert cpu.find_element(By.CLASS_NAME, "date").text == found[0]["finished"][:10]
    best = max(r["images_per_s"] for r in found[0]["bench"]["report"]["throughput"])
    assert cpu.find_element(By.CLASS_NAME, "throughput").text == f"{best:.1f}"
    h100 = by_host["NVIDIA H100 80GB HBM3"]
    assert "1 regression" in h100.text and h100.get_attribute("data-status") == "fail"
    # Colours as the stylesheet gives them: green for pass, red for fail.
    assert cpu.value_of_css_property("background-color") == "rgba(216, 243, 220, 1)"
    assert h100.value_of_css_property("background-color") == "rgba(255, 214, 214, 1)"
    # The details link lands on the record's section, with its plots decoded as images.
    link = cpu.find_element(By.TAG_NAME, "a").get_attribute("href")
    assert link.endswith("#" + found[0]["id"])
    plots = browser.find_elements(By.CSS_SELECTOR, f"section[id='{found[0]['id']}'] img")
    assert plots and all(
        browser.execute_script("return arguments[0].naturalWidth", img) > 100 for img in plots
    )

    png = browser.get_screenshot_as_png()
    image = pytest.importorskip("matplotlib.image").imread(io.BytesIO(png), format="png")
    grid = browser.find_element(By.ID, "grid").rect
    top, left = int(grid["y"]), int(grid["x"])
    region = image[top : top + int(grid["height"]), left : left + int(grid["width"]), :3]
    assert region.size and region.std() > 0.05, "the grid's area of the screenshot is blank"
    green = ((region[..., 1] > 0.9) & (region[..., 0] < 0.9)).sum()
    assert green > 500, "no pass-coloured cell in the screenshot"
