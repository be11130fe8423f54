"""The console in a real browser: Debian's chromium, headless, driven by Selenium and chromium-driver.

One browser session for every page, against a store the real `revsync import` filled with the worked
example (plus a failed write, a failed job and a quarantined record); the figures on each page are
checked against the JSON reports of the same store, and a screenshot of each page is saved under
artifacts/screenshots/ (CI keeps that folder). Without chromium the tests fail under CI=true and
are skipped, with the reason, elsewhere.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import REPO, _env, revsync, store_url, workdir, write_doc  # noqa: E402

from console_support import HOSTILE_NAME, SF_MESSAGE, add_trouble, worked_example_doc  # noqa: E402

SCREENSHOTS = REPO / "artifacts" / "screenshots"
pytestmark = pytest.mark.slow


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)
    missing = [name for name, path in (("chromium", chromium), ("chromium-driver (chromedriver)", driver)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        reason = (f"browser tests need {', '.join(missing)}: "
                  "`apt-get install -y chromium chromium-driver` (.ci/run installs them)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return chromium, driver


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`revsync console --port 0` on a worked-example store; yields (base URL, working directory)."""
    wd = workdir(tmp_path_factory.mktemp("browser"), "wd")
    result = revsync(wd, "import", str(write_doc(wd / "orders.json", worked_example_doc())))
    assert result.code == 0, result.stderr
    add_trouble(store_url(wd))
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "console", "--port", "0"], cwd=wd,
                            env=_env({"PYTHONUNBUFFERED": "1"}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert "revsync console at http://127.0.0.1:" in line, line
        yield line.split(" at ", 1)[1].split(" ", 1)[0], wd
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)  # and closes the pipes
    assert proc.returncode == 0, stderr  # SIGTERM stops it cleanly


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _open(browser, url: str, shot: str):
    from selenium.common.exceptions import NoAlertPresentException

    browser.get(url)
    assert "revsync" in browser.title
    with pytest.raises(NoAlertPresentException):  # nothing from the store ran as script
        browser.switch_to.alert.text
    browser.save_screenshot(str(SCREENSHOTS / f"{shot}.png"))
    assert (SCREENSHOTS / f"{shot}.png").stat().st_size > 1000


def _column(browser, table_id: str, column: str) -> list[str]:
    from selenium.webdriver.common.by import By

    return [td.text for td in browser.find_elements(By.CSS_SELECTOR, f'#{table_id} td[data-col="{column}"]')]


def _json(wd: Path, *args: str):
    return revsync(wd, *args, "-f", "json").json()


def test_health_page(browser, served):
    from selenium.webdriver.common.by import By

    base, wd = served
    _open(browser, base, "health")
    status = _json(wd, "status")
    assert _column(browser, "cursors", "object") == [c["object"] for c in status["cursors"]]
    assert _column(browser, "cursors", "cursor") == [c["cursor"].replace("T", " ") for c in status["cursors"]]
    assert browser.find_element(By.ID, "api-usage").text == status["api_usage"]
    assert browser.find_element(By.ID, "failed-jobs").text == str(status["failed_jobs"])
    assert browser.find_element(By.ID, "quarantined").text == str(status["quarantined"])
    assert browser.find_element(By.ID, "outbox-waiting").text == str(sum(status["outbox"].values()))
    assert browser.find_element(By.ID, "last-good-cycle").text == status["daemon"]["last_good_cycle_at"]


def test_outbox_page_shows_salesforce_message_as_text(browser, served):
    base, wd = served
    _open(browser, base + "outbox?failed=1", "outbox")
    failed = _json(wd, "outbox", "--failed")
    assert _column(browser, "outbox", "last_message") == [e["last_message"] for e in failed] == [SF_MESSAGE]
    assert _column(browser, "outbox", "id") == [str(e["id"]) for e in failed]


def test_jobs_and_quarantine_pages(browser, served):
    base, wd = served
    _open(browser, base + "jobs", "jobs")
    jobs = _json(wd, "jobs", "--failed")
    assert _column(browser, "jobs", "error") == [j["error"] for j in jobs]
    assert _column(browser, "jobs", "order") == [j["order"] for j in jobs] == ["O-2"]
    _open(browser, base + "quarantine", "quarantine")
    held = _json(wd, "quarantine")
    assert _column(browser, "quarantine", "record_id") == [q["record_id"] for q in held]
    assert _column(browser, "quarantine", "reason") == [q["reason"] for q in held]


def test_arr_page_chosen_in_the_form_matches_the_report(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, wd = served
    _open(browser, base + "arr", "arr-all")
    everything = _json(wd, "report", "arr", "--by", "quarter")
    assert _column(browser, "arr", "closing_arr") == [r["closing_arr"] for r in everything]
    assert _column(browser, "arr", "period_label") == [r["period_label"] for r in everything]
    # the currency the figures are in, as the report gives it, beside the amounts
    assert browser.find_element(By.ID, "arr-currency").text == everything[0]["currency"] == "USD"
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#arr th")]
    assert "Closing ARR (USD)" in headers and "Opening ARR (USD)" in headers
    # a person picks customer A by its name (as Salesforce spells it) and months, and submits
    Select(browser.find_element(By.ID, "filter-customer")).select_by_visible_text(f"{HOSTILE_NAME} (A)")
    Select(browser.find_element(By.ID, "filter-by")).select_by_visible_text("month")
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 10).until(lambda d: "customer=A" in d.current_url)
    _open(browser, browser.current_url, "arr")
    rows = _json(wd, "report", "arr", "--by", "month", "--customer", "A")
    assert _column(browser, "arr", "period_start") == [r["period_start"] for r in rows]
    assert _column(browser, "arr", "period_label") == [r["period_label"] for r in rows]
    assert _column(browser, "arr", "opening_arr") == [r["opening_arr"] for r in rows]
    assert _column(browser, "arr", "closing_arr") == [r["closing_arr"] for r in rows]
    assert _column(browser, "arr", "Upsell/Expansion") == [
        str(Decimal(r["changes"]["Upsell/Expansion"]) * 12) if "Upsell/Expansion" in r["changes"] else ""
        for r in rows]
    bars = browser.find_elements(By.CSS_SELECTOR, "#arr-chart rect.bar")
    assert [b.get_attribute("data-value") for b in bars] == [r["closing_arr"] for r in rows]
    heights = [b.rect["height"] for b in bars]  # as the browser laid them out
    top = max(Decimal(r["closing_arr"]) for r in rows)
    for height, r in zip(heights, rows):
        assert height == pytest.approx(max(heights) * float(Decimal(r["closing_arr"]) / top), abs=1.5)


def test_arr_page_over_a_range(browser, served):
    from selenium.webdriver.common.by import By

    base, wd = served
    _open(browser, base + "arr?by=quarter&from=2023-01-01&to=2023-12-31", "arr-fy2023")
    rows = _json(wd, "report", "arr", "--by", "quarter", "--from", "2023-01-01", "--to", "2023-12-31")
    assert _column(browser, "arr", "closing_arr") == [r["closing_arr"] for r in rows]
    steps = browser.find_elements(By.CSS_SELECTOR, "#arr-waterfall rect.step")
    texts = browser.find_element(By.ID, "arr-waterfall").text  # the figures drawn, with their currency
    assert f"{Decimal(rows[-1]['closing_arr']):,} {rows[-1]['currency']}" in texts
    assert steps[0].get_attribute("data-value") == rows[0]["opening_arr"]
    assert steps[-1].get_attribute("data-value") == rows[-1]["closing_arr"]
    assert sum(Decimal(s.get_attribute("data-value")) for s in steps[1:-1]) == (
        Decimal(rows[-1]["closing_arr"]) - Decimal(rows[0]["opening_arr"]))
