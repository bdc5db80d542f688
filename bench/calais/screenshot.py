"""A full-page screenshot of a review page in headless Chromium (what the README shows).

    .venv/bin/python bench/calais/screenshot.py calais-out/run/report/index.html bench/calais/report.jpg
"""

import os
import sys

import cv2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from tests.browser import full_page_screenshot, headless_chromium  # noqa: E402


def main() -> None:
    page, out = os.path.abspath(sys.argv[1]), sys.argv[2]
    png = out if out.endswith(".png") else out + ".png"
    with headless_chromium(1300, 1200) as driver:
        driver.get("file://" + page)
        full_page_screenshot(driver, png)
    if png != out:  # a JPEG for the README: a tenth of the PNG's size
        cv2.imwrite(out, cv2.imread(png), [cv2.IMWRITE_JPEG_QUALITY, 88])
        os.remove(png)
    print(out)


if __name__ == "__main__":
    main()
