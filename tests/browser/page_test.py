#!/usr/bin/env python3
"""The web page in headless Chromium (Debian's, driven by Playwright) against a running
local stack: upload a rendered receipt as a document, see its title and key/values, then a
rendered form, and fill it from the results the page kept; then forget the results, in the
browser and on the server. The page runs under its Content-Security-Policy: a script or
style it blocks would break these steps and show up as a console error.

    .venv/bin/python tests/browser/page_test.py API_BASE
"""
import os, sys

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("DOCUSNAP_CHROMIUM", "/usr/bin/chromium")
# The first OCR or extract invocation may still start (or build) its function.
WAIT_MS = 600_000


def main(base):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        response = page.goto(base.rstrip("/") + "/")
        assert page.title() == "DocuSnap", page.title()
        assert "default-src 'none'" in response.headers.get("content-security-policy", ""), response.headers

        page.set_input_files("#files", os.path.join(ROOT, "tests", "fixtures", "receipt.png"))
        page.check("#type-doc")
        page.click("#process")
        page.wait_for_selector("#result:not([hidden])", timeout=WAIT_MS)
        title = page.text_content("#title")
        table = page.inner_text("#kv")
        assert title == "CORNER BAKERY", title
        assert "Total\t23.40" in table, table
        assert "Date\tMar 25, 2026" in table, table
        assert "receipt" in page.inner_text("#tags")

        page.set_input_files("#files", os.path.join(ROOT, "tests", "fixtures", "form.png"))
        page.check("#type-form")
        page.click("#process")
        # Selectors, not wait_for_function: its string predicates need eval, which the
        # page's policy forbids (as it should).
        page.wait_for_selector("#fields li", timeout=WAIT_MS)
        fields = page.inner_text("#fields")
        assert "Company" in fields and "Date" in fields, fields

        page.wait_for_selector("#fill:not([disabled])")
        page.click("#fill")
        page.wait_for_selector("#title:text-is('Filled form')", timeout=WAIT_MS)
        filled = page.inner_text("#kv")
        assert "CORNER BAKERY" in filled and "2026-03-25" in filled, filled

        # "Forget my results" clears this browser's tasks on the server too.
        client = page.evaluate("localStorage.getItem('docusnap.client')")
        with page.expect_response(lambda r: r.url.endswith("/api/v1/clear")) as cleared:
            page.click("#forget")
        assert cleared.value.status == 200, cleared.value.status
        assert client in cleared.value.request.post_data, cleared.value.request.post_data
        page.wait_for_selector("#status:has-text('on the server')", timeout=30_000)
        assert page.evaluate("localStorage.getItem('docusnap.library')") is None
        assert not errors, errors
        browser.close()
    print("browser test: ok")


if __name__ == "__main__":
    main(sys.argv[1])
