"""The demo site in a real browser: `python3 tests/browser/site.py BASE SCREENSHOT.png`, where
BASE is the site's root URL (http://127.0.0.1:PORT/www/). Loads the home page, follows a clean
URL (by clicking the page's link) and a redirect, gets the custom 404, reloads the home page
(twice: what the browser holds must come back as 304s), keeps a screenshot, and prints one JSON line
of what it saw for tests/browser.rs to check."""
import json, os, sys, time
from urllib.parse import urljoin

sys.path.insert(0, os.path.dirname(__file__))
from cdp import Browser

base, shot = sys.argv[1:3]
b = Browser()
out = {}
try:
    home = b.go(base)
    out["home"] = {"status": home["status"], "title": b.evaluate("document.title"),
                   "images": b.evaluate("[...document.images].filter(i => i.complete && i.naturalWidth > 0).length")}
    b.screenshot(shot)
    since = len(b.events)
    b.evaluate("document.querySelector('a[href=\"about\"]').click()")
    b.wait_for("Page.loadEventFired", since)
    out["clean"] = {"path": b.evaluate("location.pathname"), "title": b.evaluate("document.title")}
    redirected = b.go(urljoin(base, "old-about"))
    out["redirect"] = {"status": redirected["status"], "path": b.evaluate("location.pathname"),
                       "title": b.evaluate("document.title")}
    missing = b.go(urljoin(base, "no-such-page"))
    out["missing"] = {"status": missing["status"], "text": b.evaluate("document.body.innerText")}
    b.go(base)
    # A reload first lets the copies made meanwhile (compressed ones) become what is held.
    b.go()
    since = len(b.events)
    reloaded = b.go()
    out["reload"] = {"document": reloaded["status"], "responses": b.responses(since)}
finally:
    b.close()
print(json.dumps(out))
