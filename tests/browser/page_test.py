#!/usr/bin/env python3
"""The web page in headless Chromium (Debian's, driven by Playwright) against a running
local stack, as a v2 client: a photo of more than 10 MB goes straight to the local S3 as a
document, comes back with its title and key/values, its lines boxed over the photo, and
choosing a value highlights the line it was read from (a screenshot of that is kept as a
test artifact); then a rendered form, filled from the results the page kept; then the
library: one result deleted, the rest exported as JSON, and all forgotten, in the browser
and on the server. The page runs under its Content-Security-Policy: a script, style or
request it blocks would break these steps and show up as a console error.

    .venv/bin/python tests/browser/page_test.py API_BASE RENDER_BINARY [ARTIFACT_DIR]
"""
import json, os, subprocess, sys, tempfile

from playwright.sync_api import sync_playwright

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHROMIUM = os.environ.get("DOCUSNAP_CHROMIUM", "/usr/bin/chromium")
# The first OCR or extract invocation may still start (or build) its function.
WAIT_MS = 600_000


def main(base, render, artifacts):
    tmp = tempfile.mkdtemp()
    photo = os.path.join(tmp, "receipt-photo.jpg")
    subprocess.run([render, photo, "--photo", "11", "CORNER BAKERY", "Date: 25/03/2026", "TOTAL 23.40"], check=True)
    assert os.path.getsize(photo) > 10_000_000, os.path.getsize(photo)
    os.makedirs(artifacts, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        # cargo-lambda's emulator now and then answers a page load with its own 500 (the
        # flake scripts/test's load run tolerates): load the page again, saying what came
        # back, rather than fail on the harness. Only the page load that counts may leave
        # console errors: a failed attempt's (its 500, the error page's favicon) are the
        # harness's, and are cleared with it.
        for attempt in range(3):
            errors.clear()
            response = page.goto(base.rstrip("/") + "/")
            if page.title() == "DocuSnap":
                break
            print(f"page load {attempt + 1}: {response.status if response else 'no response'}, "
                  f"title {page.title()!r}, {page.content()[:600]!r}", flush=True)
        assert page.title() == "DocuSnap", page.title()
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'none'" in policy and "connect-src 'self' http" in policy, policy

        # The photo: uploaded straight to storage, its stages shown, its lines boxed.
        page.set_input_files("#files", photo)
        page.check("#type-doc")
        with page.expect_request(lambda r: r.method == "PUT" and r.url.split("?")[0].endswith("/pages/0.page")) as put:
            page.click("#process")
        assert put.value.headers.get("x-amz-checksum-sha256"), put.value.headers
        page.wait_for_selector("#stage-reading.active, #stage-extracting.active, #stage-extracting.done", timeout=WAIT_MS)
        page.wait_for_selector("#result:not([hidden])", timeout=WAIT_MS)
        title = page.text_content("#title")
        table = page.inner_text("#kv")
        assert title == "CORNER BAKERY", title
        assert "Total\t23.40" in table, table
        assert "Date\tMar 25, 2026" in table, table
        assert page.locator("#pages img").count() == 1
        assert page.locator("#pages polygon").count() >= 3
        page.click("#kv tr:has(th:text-is('Total'))")
        hit = page.locator("#pages polygon.hit")
        assert hit.count() == 1, hit.count()
        assert hit.first.text_content().startswith("TOTAL 23.40"), hit.first.text_content()
        page.screenshot(path=os.path.join(artifacts, "v2-receipt.png"), full_page=True)

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

        # The library: three results; the filled form deleted (on the server too).
        entries = page.locator("#library li .entry")
        assert entries.count() == 3, page.inner_text("#library")
        with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
            page.locator("#library li").nth(2).locator("button.delete").click()
        assert deleted.value.status == 200, deleted.value.status
        page.wait_for_selector("#status:text-is('Deleted.')")
        assert page.locator("#library li .entry").count() == 2
        page.locator("#library li").first.locator("button.open").click()
        assert page.text_content("#title") == "CORNER BAKERY"
        with page.expect_download() as download:
            page.click("#export")
        exported = json.load(open(download.value.path()))
        assert [e["type"] for e in exported] == ["doc", "form"], exported
        assert all("token" not in e for e in exported), "tokens stay in the browser"
        assert exported[0]["result"]["kv"]["Total"] == "23.40"

        # Two receipts in one upload: a card each, with its own total.
        receipts = []
        for n, (shop, total) in enumerate([("KEDAI MAJU SDN BHD", "18.90"), ("HARBOUR CAFE SDN BHD", "4.80")]):
            path = os.path.join(tmp, f"receipt-{n}.png")
            subprocess.run([render, path, shop, f"Date: 0{n + 1}/03/2026", f"TOTAL {total}"], check=True)
            receipts.append(path)
        page.set_input_files("#files", receipts)
        page.check("#type-doc")
        page.click("#process")
        page.wait_for_selector("#documents .document", timeout=WAIT_MS)
        cards = page.locator("#documents .document")
        assert cards.count() == 2, page.inner_text("#result")
        assert "KEDAI MAJU" in cards.nth(0).inner_text() and "18.90" in cards.nth(0).inner_text(), cards.nth(0).inner_text()
        assert "Page 2" in cards.nth(1).inner_text() and "4.80" in cards.nth(1).inner_text(), cards.nth(1).inner_text()
        page.screenshot(path=os.path.join(artifacts, "v2-documents.png"), full_page=True)

        # "Forget my results" deletes every task on the server, then the library.
        deletes = []
        page.on("response", lambda r: deletes.append(r.status) if r.request.method == "DELETE" else None)
        page.click("#forget")
        page.wait_for_selector("#status:has-text('on the server')", timeout=30_000)
        assert deletes == [200, 200, 200], deletes
        assert page.evaluate("localStorage.getItem('docusnap.results')") == "[]"
        assert not errors, errors
        browser.close()
    print("browser test: ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else os.path.join(ROOT, ".local", "artifacts"))
