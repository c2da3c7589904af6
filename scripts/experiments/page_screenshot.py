"""Screenshot of the page at / in Debian's headless Chromium, for the README.

    skipfold demo --no-serve --workdir /tmp/demo
    skipfold serve --repo /tmp/demo/repo --port 8000 &
    python scripts/experiments/page_screenshot.py http://127.0.0.1:8000 docs/page.png

Clicks the demo's star sample, waits for the latency comparison to finish, saves the window.
"""

import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main(url: str, out: str) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--window-size=1280,760"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url + "/")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#samples button[data-label='star']"))
        driver.find_element(By.CSS_SELECTOR, "#model option[value='skipinit']").click()
        driver.find_element(By.CSS_SELECTOR, "#samples button[data-label='star']").click()
        wait.until(lambda d: d.find_element(By.ID, "result").get_attribute("data-image") == "star")
        driver.find_element(By.ID, "rerun").click()
        wait.until(lambda d: "round 30 of 30" in d.find_element(By.ID, "progress").text)
        driver.save_screenshot(out)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
