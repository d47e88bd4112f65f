"""The demo gallery in a real browser: `python3 tests/browser/gallery.py PAGE SCREENSHOT.png`,
where PAGE is the gallery's URL (http://127.0.0.1:PORT/www/gallery). Waits for the page to lay
out the album, reads each tile's displayed size, waits for the thumbnails in view to load,
keeps a screenshot, opens the first photo by a click and the next by the arrow key, and prints
one JSON line of what it saw for tests/browser.rs to check."""
import json, os, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from cdp import Browser


def until(b, expression, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if b.evaluate(expression):
            return True
        time.sleep(0.05)
    return False


page, shot = sys.argv[1:3]
b = Browser()
out = {}
try:
    out["status"] = b.go(page)["status"]
    out["ready"] = until(b, "document.body.dataset.ready === 'true'")
    out["tiles"] = b.evaluate("""[...document.querySelectorAll('.tile')].map(t => ({
        name: t.dataset.name, w: Number(t.dataset.w), h: Number(t.dataset.h),
        width: t.getBoundingClientRect().width, height: t.getBoundingClientRect().height}))""")
    visible = """[...document.querySelectorAll('.tile img')]
        .filter(i => i.getBoundingClientRect().top < innerHeight)"""
    out["loaded"] = until(b, f"{visible}.every(i => i.complete && i.naturalWidth > 0)")
    out["visible"] = b.evaluate(f"{visible}.length")
    out["thumbs"] = b.evaluate(f"{visible}.map(i => i.currentSrc)")
    time.sleep(0.4)  # the fade-in
    b.screenshot(shot)
    b.evaluate("document.querySelector('.tile').click()")
    out["opened"] = until(b, "document.getElementById('full').complete && document.getElementById('full').naturalWidth > 0 && document.getElementById('view').classList.contains('open')")
    out["full"] = b.evaluate("({src: document.getElementById('full').src, width: document.getElementById('full').naturalWidth, height: document.getElementById('full').naturalHeight, caption: document.getElementById('caption').textContent})")
    b.send("Input.dispatchKeyEvent", type="keyDown", key="ArrowRight", code="ArrowRight", windowsVirtualKeyCode=39)
    b.send("Input.dispatchKeyEvent", type="keyUp", key="ArrowRight", code="ArrowRight", windowsVirtualKeyCode=39)
    until(b, "document.getElementById('full').complete")
    out["next"] = b.evaluate("document.getElementById('caption').textContent")
    b.send("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape", windowsVirtualKeyCode=27)
    out["closed"] = until(b, "!document.getElementById('view').classList.contains('open')", 5)
finally:
    b.close()
print(json.dumps(out))
