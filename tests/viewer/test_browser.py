"""`totalseg view` in headless Chromium (DevTools protocol): the pages render and respond."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from totalseg.viewer import open_case, open_study

READY = "document.body && ['ready', 'error'].includes(document.body.dataset.state)"


def canvas_pixels(page: Any) -> np.ndarray:
    """The viewer canvas as it is on screen (RGB, from a page screenshot)."""
    x, y, w, h = page.evaluate(
        "(() => { const r = document.getElementById('gl').getBoundingClientRect();"
        " return [r.x, r.y, r.width, r.height].map(Math.round); })()"
    )
    return page.screenshot()[y : y + h, x : x + w].astype(np.int16)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """open_page(url, size=) -> a page that has loaded (closed after the test)."""
    pages = []

    def start(url: str, *, size: tuple[int, int] = (800, 520), wait: bool = True) -> Any:
        page = browser.new_page()
        pages.append(page)
        page.set_size(*size)
        page.goto(url)
        if wait:
            page.wait_for(READY, timeout_s=120)
        return page

    yield start
    for page in pages:
        page.close()


def click(page: Any, selector: str) -> None:
    page.evaluate(f"document.querySelector({selector!r}).click()")


def test_case_viewer_renders_lists_and_toggles_structures(
    open_page: Any, serve: Any, phantom_case: Any
) -> None:
    server = serve(open_case(phantom_case.ct, phantom_case.seg))
    page = open_page(server.url + "case/ct/#layout=axial")
    assert page.evaluate("document.body.dataset.state") == "ready", page.console
    click(page, "#structures tbody tr[data-name=liver] button")  # jump to the liver
    assert "liver" in page.evaluate("document.getElementById('location').textContent")
    shown = canvas_pixels(page)
    assert shown.std() > 20 and len(np.unique(shown.reshape(-1, 3), axis=0)) > 100  # not blank

    names = page.evaluate(
        "[...document.querySelectorAll('#structures tbody tr')].map(r => r.dataset.name)"
    )
    assert set(names) == set(phantom_case.label_map.labels.values())
    assert "liver" in names and len(names) == len(phantom_case.label_map.labels)

    liver = "#structures tbody tr[data-name=liver] input"
    click(page, liver)  # hide the liver
    hidden = canvas_pixels(page)
    assert np.abs(hidden - shown).mean() > 0.5  # the image changed
    click(page, liver)  # show it again: the first image comes back
    assert np.abs(canvas_pixels(page) - shown).mean() < 0.1 * np.abs(hidden - shown).mean()

    click(page, "[data-preset=bone]")
    assert page.evaluate(
        "[document.getElementById('level').value, document.getElementById('width').value,"
        " totalsegViewer.nv.volumes[0].cal_min, totalsegViewer.nv.volumes[0].cal_max]"
    ) == ["400", "1800", -500, 1300]


def test_hover_names_the_structure_under_the_mouse(
    open_page: Any, serve: Any, phantom_case: Any
) -> None:
    server = serve(open_case(phantom_case.ct, phantom_case.seg))
    page = open_page(server.url + "case/ct/#layout=axial")
    click(page, "#structures tbody tr[data-name=liver] button")  # axial slice through the liver
    x, y = page.evaluate(
        "(() => { const nv = totalsegViewer.nv; const s = totalsegViewer.info.structures"
        ".find(s => s.name === 'liver'); const r = document.getElementById('gl')"
        ".getBoundingClientRect(); const p = nv.frac2canvasPosWithTile(nv.mm2frac(s.centroid_mm))"
        ".pos; return [r.x + p[0] / nv.uiData.dpr, r.y + p[1] / nv.uiData.dpr]; })()"
    )
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    text = page.wait_for(
        "!document.getElementById('hover').hidden && document.getElementById('hover').textContent"
    )
    assert text.startswith("liver \u00b7 ") and text.endswith(" HU")

    window = (
        "[document.getElementById('level').value, document.getElementById('width').value,"
        " totalsegViewer.nv.volumes[0].cal_min, totalsegViewer.nv.volumes[0].cal_max]"
    )
    assert page.evaluate(window) == ["40", "400", -160, 240]
    mouse = {"button": "right", "buttons": 2}
    page.call("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, clickCount=1, **mouse)
    for step in range(1, 6):  # free windowing: a right-drag
        page.call(
            "Input.dispatchMouseEvent", type="mouseMoved", x=x + 8 * step, y=y + 6 * step, **mouse
        )
    page.call(
        "Input.dispatchMouseEvent",
        type="mouseReleased",
        x=x + 40,
        y=y + 30,
        clickCount=1,
        button="right",
        buttons=0,
    )
    level, width, lo, hi = page.evaluate(window)
    assert (lo, hi) != (-160, 240)
    assert (float(level), float(width)) == pytest.approx(((lo + hi) / 2, hi - lo), abs=0.5)


def test_the_browser_gets_403_without_the_token(
    open_page: Any, serve: Any, phantom_case: Any
) -> None:
    server = serve(open_case(phantom_case.ct))
    page = open_page(server.url.rsplit("/", 2)[0] + "/", wait=False)
    text = page.wait_for("document.body && document.body.innerText")
    assert text.startswith("forbidden")


def test_study_table_sorts_filters_and_links(
    open_page: Any, serve: Any, study_folder: Path
) -> None:
    server = serve(open_study(study_folder))
    page = open_page(server.url, size=(1100, 500))
    ids = "[...document.querySelectorAll('#cases tbody tr')].map(r => r.dataset.caseId)"
    assert page.evaluate(ids) == ["p0", "p1", "p2"]
    flagged = "[...document.querySelectorAll('#cases tbody tr.flagged')].map(r => r.dataset.caseId)"
    assert page.evaluate(flagged) == ["p1", "p2"]
    assert page.evaluate("document.getElementById('counts').textContent") == "2 flagged, 1 failed"
    click(page, "th[data-key=age]")
    click(page, "th[data-key=age]")  # descending
    assert page.evaluate(ids) == ["p2", "p1", "p0"]
    page.evaluate(
        "const f = document.getElementById('filter'); f.value = 'liver';"
        " f.dispatchEvent(new Event('input'))"
    )
    assert page.evaluate(ids) == ["p1"]
    page.evaluate(
        "const g = document.getElementById('filter'); g.value = '';"
        " g.dispatchEvent(new Event('input')); location.hash = 'flag=liver'"
    )
    page.wait_for(f"{ids}.length === 1")
    assert page.evaluate(ids) == ["p1"]
    hrefs = page.evaluate(
        "[...document.querySelectorAll('#cases tbody a')].map(a => a.getAttribute('href'))"
    )
    assert hrefs == ["case/p1/"]
    shot = page.screenshot()
    assert shot.std() > 5  # the table is drawn


@pytest.mark.slow
def test_next_flagged_case_walks_the_flagged_cases(
    open_page: Any, serve: Any, study_folder: Path
) -> None:
    server = serve(open_study(study_folder))
    page = open_page(server.url, size=(1100, 600))
    click(page, "tr[data-case-id=p0]")  # a click on the row opens the case
    page.wait_for("location.pathname.endsWith('/case/p0/') && " + READY, timeout_s=120)
    assert page.evaluate("document.body.dataset.state") == "ready"
    assert page.evaluate("document.getElementById('meta').textContent") == "F \u00b7 40 y"
    click(page, "#next-flagged")
    page.wait_for("location.pathname.endsWith('/case/p1/') && " + READY, timeout_s=120)
    assert "implausible: liver" in page.evaluate("document.getElementById('meta').textContent")
    flag = page.evaluate("document.querySelector('tr[data-name=liver] td:last-child').textContent")
    assert flag == "implausible"
    click(page, "#next-flagged")
    page.wait_for("location.pathname.endsWith('/case/p2/') && " + READY, timeout_s=120)
    assert page.evaluate("document.body.dataset.state") == "error"
    assert "readable NIfTI" in page.evaluate("document.getElementById('message').textContent")


@pytest.mark.slow
def test_a_large_volume_shows_its_preview_first(
    open_page: Any, serve: Any, phantom_case: Any
) -> None:
    server = serve(open_case(phantom_case.ct, phantom_case.seg, preview_max_voxels=50_000))
    page = open_page(server.url + "case/ct/#layout=axial")
    loaded = page.evaluate(
        "performance.getEntriesByType('resource').map(e => e.name.split('/').pop())"
    )
    assert loaded.index("ct-preview.nii.gz") < loaded.index("ct.nii.gz")
    assert page.evaluate("Array.from(totalsegViewer.nv.volumes[0].hdr.dims.slice(1, 4))") == list(
        phantom_case.image.shape
    )


@pytest.mark.slow
def test_the_3d_render_is_drawn(open_page: Any, serve: Any, phantom_case: Any) -> None:
    server = serve(open_case(phantom_case.ct, phantom_case.seg))
    page = open_page(server.url + "case/ct/#layout=render")
    pixels = canvas_pixels(page)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100
