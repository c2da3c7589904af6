"""The page at / and Swagger UI at /docs in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium): they load with no request to any host but the server, a
chosen sample shows the label /predict gives, the latency comparison renders, /docs renders."""

import json
import os
import shutil
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import Server

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# under CI (which installs them) a missing browser fails these tests instead of skipping them
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def server(repo):
    server = Server(repo)
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900"):
        options.add_argument(argument)
    options.add_argument("--disable-dev-shm-usage")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _requested_urls(driver) -> list[str]:
    """Every URL the browser asked for, from Chromium's DevTools network events."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _foreign(urls: list[str], server: Server) -> list[str]:
    own = urlsplit(server.url).netloc
    return [
        u for u in urls if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != own
    ]


def _wait(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


@needs_chromium
def test_the_page_classifies_a_sample_and_compares_latency(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#samples button")) == 10)
    models = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#model option")]
    assert set(models) == {"bn", "bn-unfolded", "plain", "skipinit"}

    for model, label in (("skipinit", "star"), ("bn", "ring")):
        browser.find_element(By.CSS_SELECTOR, f"#model option[value='{model}']").click()
        browser.find_element(By.CSS_SELECTOR, f"#samples button[data-label='{label}']").click()
        png = httpx.get(f"{server.url}/samples/{label}.png").content
        answer = httpx.post(
            f"{server.url}/predict?model={model}",
            content=png,
            headers={"Content-Type": "image/png"},
        ).json()
        expected = answer["results"][0]["predictions"][0]["label"]
        served = f"{model} version {answer['version']}"

        def shown(driver, served=served, label=label) -> bool:
            result = driver.find_element(By.ID, "result")
            answer = driver.find_element(By.ID, "answer").text
            return result.get_attribute("data-image") == label and answer.endswith(served)

        _wait(browser, shown)
        assert browser.find_element(By.ID, "top1").text == expected
        bars = browser.find_elements(By.CSS_SELECTOR, "#predictions li")
        assert len(bars) == 5
        assert "inference" in browser.find_element(By.ID, "timings").text

    # the latency comparison: one row per served model, with a time and a bar
    _wait(browser, lambda d: "round 30 of 30" in d.find_element(By.ID, "progress").text, 120)
    rows = browser.find_elements(By.CSS_SELECTOR, "#latency tbody tr")
    assert {r.get_attribute("data-model") for r in rows} == set(models)
    for row in rows:
        cells = row.find_elements(By.TAG_NAME, "td")
        assert cells[2].text.endswith(" ms") and float(cells[2].text.split()[0]) > 0
        assert row.find_element(By.CSS_SELECTOR, ".bar").size["width"] > 0
    kinds = {
        r.get_attribute("data-model"): r.find_elements(By.TAG_NAME, "td")[1].text for r in rows
    }
    assert "bn, folded, fp32" in kinds["bn"] and "bn, unfolded, fp32" in kinds["bn-unfolded"]
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000
    urls = _requested_urls(browser)
    assert any(u.endswith("/predict?model=bn&top_k=5&version=2") for u in urls)
    assert not _foreign(urls, server)


@needs_chromium
def test_docs_render_offline(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/docs")
    title = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert title[0].text.startswith("skipfold")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
    paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/predict", "/v2/models/{name}/infer", "/v2/repository/index"} <= {
        p.replace("\u200b", "") for p in paths
    }
    urls = _requested_urls(browser)
    assert any(u.endswith("/openapi.json") for u in urls)
    assert not _foreign(urls, server)


def test_page_and_docs_assets_need_no_api_key_but_the_api_does(repo):
    server = Server(repo, env={"SKIPFOLD_API_KEY": "k"})
    server.wait_ready()
    try:
        for path in ("/", "/page/page.js", "/page/page.css", "/docs", "/samples",
                     "/samples/star.png", "/openapi.json"):  # fmt: skip
            assert httpx.get(server.url + path).status_code == 200, path
        page = httpx.get(server.url + "/").text
        assert '"needsKey": true' in page and "X-API-Key" in page
        assert httpx.get(server.url + "/models").status_code == 401
        assert httpx.get(server.url + "/samples/nope.png").status_code == 404
        docs = httpx.get(server.url + "/docs").text
        assert "cdn" not in docs.lower() and "/swagger/swagger-ui-bundle.js" in docs
    finally:
        server.stop()


@needs_chromium
def test_the_page_offers_image_classifiers_and_names_the_other_models(repo, browser, tmp_path):
    """A float NCHW model beside the classifiers: served over /v2, not offered for images."""
    from selenium.webdriver.common.by import By

    from tests.service import any_models

    mixed = tmp_path / "repo"
    shutil.copytree(repo / "skipinit", mixed / "skipinit")
    any_models.place(mixed, "nchw", any_models.nchw(), any_models.NCHW_CONFIG)
    server = Server(mixed, "--default-model", "nchw")
    server.wait_ready()
    try:
        browser.get(server.url + "/")
        _wait(browser, lambda d: d.find_element(By.ID, "others").is_displayed())
        models = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#model option")]
        assert models == ["skipinit"]
        assert "not image classifiers): nchw" in browser.find_element(By.ID, "others").text
    finally:
        server.stop()
