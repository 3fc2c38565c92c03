"""The page in a real browser: Debian's chromium, headless, its microphone a WAV file
(Chromium's fake capture device). It enrolls a speaker from the microphone and verifies
them, and a screenshot of the answer is kept (``test-artifacts/serve-page.png``).

``.ci/run`` installs chromium and its driver; elsewhere the test skips without them, unless
``SPEAKERGMM_REQUIRE_BROWSER=1`` says they must be there (CI sets it).
"""

from __future__ import annotations

import os
import shutil

import pytest
from service_helpers import server, tokens

from conftest import REPO, corpus, write_audio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("SPEAKERGMM_REQUIRE_BROWSER") == "1":
        raise RuntimeError("SPEAKERGMM_REQUIRE_BROWSER=1 but chromium or chromedriver is "
                           "missing: apt-get install chromium chromium-driver")
    pytest.skip("no chromium and chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")


def _speech(speaker: str, recordings: int):
    """``recordings`` of a speechocean762 speaker, joined: (signal, rate). Real speech: the
    bundled wideband system tells synthetic voices apart no better than chance."""
    import numpy as np

    from speakergmm.frontend.audio import load

    folder = corpus("speechocean762") / "WAVE" / speaker
    signals = [load(p) for p in sorted(folder.glob("*.flac"))[:recordings]]
    return np.concatenate([y for y, _ in signals]), signals[0][1]


@pytest.fixture
def browser(tmp_path):

    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    # the microphone: one speaker's read speech, looped by Chromium
    mic = write_audio(tmp_path / "mic.wav", *_speech("SPEAKER0001", 4), subtype="PCM_16")
    options = Options()
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={mic}", "--window-size=900,1400",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait_text(driver, element_id: str, text: str, timeout: float = 90.0) -> str:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout).until(
            lambda d: text in d.find_element("id", element_id).text)
    except TimeoutException:
        said = {i: driver.find_element("id", i).text for i in (
            "token-status", "record-status", "verdict", "details", "caution")}
        raise AssertionError(f"#{element_id} never said {text!r}; the page says {said}; "
                             f"console: {driver.get_log('browser')}") from None
    return driver.find_element("id", element_id).text


def _record(driver, seconds: float) -> None:
    import time

    driver.find_element("id", "record-button").click()
    _wait_text(driver, "record-status", "Recording")
    time.sleep(seconds)
    driver.find_element("id", "record-button").click()
    _wait_text(driver, "record-status", "Recorded")


def test_the_page_enrolls_and_verifies_from_the_microphone(browser, tmp_path):
    from selenium.webdriver.support.ui import Select

    store = tmp_path / "speakers.db"
    keys = tokens(store)
    other = write_audio(tmp_path / "bob.wav", *_speech("SPEAKER0145", 3))
    with server(store) as (url, _):
        browser.get(url + "/")
        browser.find_element("id", "token").send_keys(keys["write"])
        browser.find_element("css selector", "#token-form button").click()
        _wait_text(browser, "token-status", "Token accepted")
        _record(browser, 8)
        browser.find_element("id", "enroll-name").send_keys("alice")
        browser.find_element("css selector", "#enroll-form button").click()
        assert "Enrolled alice" in _wait_text(browser, "verdict", "Enrolled")
        # bob from a file, the other way in
        browser.find_element("id", "file").send_keys(str(other))
        _wait_text(browser, "record-status", "bob.wav ready")
        browser.find_element("id", "enroll-name").clear()
        browser.find_element("id", "enroll-name").send_keys("bob")
        browser.find_element("css selector", "#enroll-form button").click()
        _wait_text(browser, "verdict", "Enrolled bob")
        # (the list is rebuilt after the verdict shows: read it whole, once it is)
        from selenium.webdriver.support.ui import WebDriverWait

        listed = "return [...document.querySelectorAll('#speakers tbody tr')]" \
                 ".map(r => r.cells[0].textContent)"
        WebDriverWait(browser, 30).until(lambda d: len(d.execute_script(listed)) == 2)
        assert browser.execute_script(listed) == ["alice", "bob"]
        # the microphone again: alice is accepted, a claim to be bob is rejected
        _record(browser, 6)
        claim = Select(browser.find_element("id", "verify-name"))
        claim.select_by_value("bob")
        browser.find_element("css selector", "#verify-form button").click()
        assert "No: this does not sound like bob" in _wait_text(browser, "verdict", "No")
        claim.select_by_value("alice")
        browser.find_element("css selector", "#verify-form button").click()
        verdict = _wait_text(browser, "verdict", "Yes")
        assert verdict == "Yes: this sounds like alice"
        details = browser.find_element("id", "details").text
        assert "LLR" in details and "probability it is alice" in details
        width = browser.find_element("id", "bar-fill").value_of_css_property("width")
        assert float(width.rstrip("px")) > 0
        out = REPO / "test-artifacts"
        out.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(out / "serve-page.png"))
        browser.find_element("css selector", "#identify-form button").click()
        assert _wait_text(browser, "verdict", "This is") == "This is alice"

