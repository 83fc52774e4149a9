"""report.html laid out in a real headless Chromium: nothing overlaps, nothing overflows its box.

The run is the recorded golden run (two workers, storms on both sides, replay, CORS and rate-limit
probes), rebuilt with ``loadtest report`` from a copy that lacks ``overrides.json``, so no Locust
run is needed and a folder without its overrides is proven to rebuild. The page is checked at 1280
and 1920 px through the elements' bounding boxes; on a failure a full-page screenshot is saved in
the test's folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_webui import CHROMIUM_ARGS, chromium  # noqa: F401 - the fixture

GOLDEN = Path(__file__).resolve().parent / "golden"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: Boxes on the page, and where each must stay: inside its parent and clear of its siblings.
LAYOUT_JS = """
() => {
  const blocks = 'header, section, figure, table, details, .grid > div, .facts > div, h2, h3, img, p, ul';
  const els = [...document.querySelectorAll(blocks)].filter(e => e.getClientRects().length);
  const box = e => e.getBoundingClientRect();
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (e.className ? '.' + String(e.className).split(' ').join('.') : '') +
      ' "' + (e.innerText || e.alt || '').trim().slice(0, 40).replace(/\\s+/g, ' ') + '"';
  const problems = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width + 1)
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  for (const e of els) {
    const r = box(e), p = box(e.parentElement);
    if (r.right > p.right + 1 || r.left < p.left - 1)
      problems.push(`${name(e)} overflows its parent (${r.left}-${r.right} in ${p.left}-${p.right})`);
  }
  for (const cell of document.querySelectorAll('td, th, .facts > div, figcaption')) {
    if (cell.scrollWidth > cell.clientWidth + 1)
      problems.push(`${name(cell)} content is wider than its box (${cell.scrollWidth} > ${cell.clientWidth})`);
  }
  for (let i = 0; i < els.length; i++) {
    for (let j = i + 1; j < els.length; j++) {
      const a = els[i], b = els[j];
      if (a.contains(b) || b.contains(a)) continue;
      const ra = box(a), rb = box(b);
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w > 1 && h > 1) problems.push(`${name(a)} overlaps ${name(b)} (${w}x${h} px)`);
    }
  }
  return problems;
}
"""


@pytest.fixture(scope="module")
def golden_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("layout") / "run"
    shutil.copytree(GOLDEN / "run", folder)
    (folder / "overrides.json").unlink()  # what a copied or older folder lacks: it must still rebuild
    shutil.copyfile(GOLDEN / "expected" / "summary.json", folder / "summary.json")  # as the run left it
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 1, 3), proc.stdout + proc.stderr
    assert "cannot read the run's scenario" not in proc.stderr
    return folder / "report.html"


def test_report_is_one_self_contained_file_that_opens_with_the_verdict(golden_report: Path) -> None:
    html = golden_report.read_text(encoding="utf-8")
    assert CSP in html and "<script" not in html.lower() and "<link" not in html.lower()
    verdict = html.split('id="verdict"', 1)[1].split("</header>", 1)[0]
    # One line per concern, each with a mark in words, before any table of numbers.
    for concern in ("Run integrity", "Tick rate", "Replay and forgery", "Rate limits", "Reconnects", "HTTP steps"):
        assert f"<th>{concern}</th>" in verdict, concern
    assert '<span class="mark warn">WARN</span></td><th>Reconnects</th>' in verdict  # 6 players gave up
    assert '<span class="mark pass">PASS</span></td><th>Replay and forgery</th>' in verdict
    assert "<details>" in html and "<h3>Server against client tick rate</h3>" in html


@pytest.mark.xdist_group("heavy")
def test_report_layout_in_a_real_browser(chromium: str, golden_report: Path, tmp_path: Path) -> None:  # noqa: F811
    from playwright import sync_api as playwright

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for width in (1280, 1920):
                page = browser.new_page(viewport={"width": width, "height": 900})
                blocked: list[str] = []
                page.on("requestfailed", lambda request, blocked=blocked: blocked.append(request.url))
                page.on("console", lambda m, b=blocked: "Content Security" in m.text and b.append(m.text))
                page.goto(golden_report.as_uri())
                page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
                problems: list[Any] = page.evaluate(LAYOUT_JS)
                first_screen = page.evaluate("() => document.querySelector('#concerns').getBoundingClientRect().bottom")
                if problems or blocked or first_screen > 900:
                    shot = tmp_path / f"report-{width}.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot: {shot}")
                assert not problems, f"at {width} px: " + "\n".join(problems[:20])
                assert not blocked, blocked  # nothing fetched, nothing refused by the CSP
                assert first_screen <= 900, f"the verdict lines end at {first_screen} px, below the first screen"
                # The check sees what it is meant to: a table wider than its box is reported.
                page.evaluate(
                    "() => { const t = document.createElement('table'); t.innerHTML = '<tr><td>' + "
                    "'x'.repeat(4000) + '</td></tr>'; document.querySelector('.grid > div').appendChild(t); }"
                )
                assert any("overflows its parent" in p for p in page.evaluate(LAYOUT_JS))
                page.close()
        finally:
            browser.close()
