"""Checks any browser test of the sync page can reuse: axe-core's findings, the keyboard's
Tab stops and focus, what the live regions said, and whether anything overflows the screen.

axe-core comes from a pinned PyPI package that vendors axe.min.js (requirements-dev.txt),
so nothing is fetched at test time; it is evaluated in the page, not added as a <script>
tag, which the page's CSP (script-src 'self') would refuse.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

# What the page must never have, whatever its state: WCAG 2 A/AA and axe's best practices.
BLOCKING_IMPACTS = ("serious", "critical")


@lru_cache(maxsize=1)
def axe_source() -> str:
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")


def axe_version() -> str:
    return axe_source().split("axe v", 1)[1].split()[0]


def axe_findings(page: Any, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> list[dict[str, Any]]:
    """axe-core's violations of the given impacts on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result = page.evaluate("""async () => {
        // The settled page: colours mid-transition are no state anybody reads.
        await Promise.all(document.getAnimations()
            .filter((a) => a instanceof CSSTransition).map((a) => a.finished.catch(() => null)));
        const r = await axe.run(document, { resultTypes: ['violations'] });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })) }));
    }""")
    return [v for v in result if v["impact"] in impacts]


def assert_no_serious_axe(page: Any, where: str = "") -> None:
    """0 serious and 0 critical axe-core findings, each listed with its elements if not."""
    findings = axe_findings(page)
    assert findings == [], f"axe-core ({where or page.url}):\n" + json.dumps(findings, ensure_ascii=False, indent=1)


def focused(page: Any) -> dict[str, Any]:
    """What has the keyboard focus: its id, focus key, date, role, name-ish text."""
    return page.evaluate("""() => {
        const el = document.activeElement;
        if (!el || el === document.body) return { tag: 'body', id: null, key: null, date: null, label: null, text: '' };
        return { tag: el.tagName.toLowerCase(), id: el.id || null,
                 key: el.getAttribute('data-focus-key'), date: el.getAttribute('data-date'),
                 label: el.getAttribute('aria-label'), text: (el.textContent || '').trim().slice(0, 80) };
    }""")


def tab_until(page: Any, predicate: str, limit: int = 80, back: bool = False) -> dict[str, Any]:
    """Press Tab (Shift+Tab with `back`) until `predicate` (JS, of `el`) holds for the focus."""
    check = f"() => {{ const el = document.activeElement; return !!el && el !== document.body && ({predicate}); }}"
    for _ in range(limit):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if page.evaluate(check):
            return focused(page)
    raise AssertionError(f"no Tab stop where {predicate} within {limit} presses; at {focused(page)}")


def tab_stops(page: Any, limit: int = 150) -> list[dict[str, Any]]:
    """Every Tab stop of the page once round (an element with several stops, such as a date
    input's fields, once), in order from wherever the focus is."""
    stops: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        here = page.evaluate("""() => { const el = document.activeElement;
            if (!el || el === document.body) return null;
            if (!el.dataset.tabSeen) el.dataset.tabSeen = String(Math.random());
            return { seen: el.dataset.tabSeen, id: el.id || null, date: el.getAttribute('data-date'),
                     inCalendar: !!el.closest('#calendar') }; }""")
        if here is None or (stops and here["seen"] == stops[-1]["seen"]):
            continue
        if any(stop["seen"] == here["seen"] for stop in stops):
            break
        stops.append(here)
    page.evaluate("for (const el of document.querySelectorAll('[data-tab-seen]')) delete el.dataset.tabSeen")
    return stops


def record_announcements(page: Any) -> None:
    """From now on, keep every text any live region (aria-live, status, alert, log) shows."""
    page.evaluate("""() => {
        window.__said = [];
        const live = (n) => n && n.closest && n.closest('[aria-live], [role=status], [role=alert], [role=log]');
        new MutationObserver((records) => {
            const seen = new Set();
            for (const r of records) {
                const region = live(r.target.nodeType === 1 ? r.target : r.target.parentElement);
                if (!region || seen.has(region)) continue;
                seen.add(region);
                const text = region.textContent.trim();
                if (text && !region.hidden) window.__said.push({ region: region.id, text });
            }
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }""")


def announcements(page: Any) -> list[dict[str, str]]:
    return page.evaluate("window.__said")


def overflowing_elements(page: Any) -> dict[str, Any]:
    """The document's width against the screen's, and every visible element that reaches past
    the screen's edge, except inside a region that scrolls sideways (which must fit itself)."""
    return page.evaluate("""() => {
        const width = window.innerWidth;
        const scrolls = (el) => { const s = getComputedStyle(el);
            return ['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX); };
        const bad = [];
        for (const el of document.body.querySelectorAll('*')) {
            const box = el.getBoundingClientRect();
            if (!box.width || !box.height || getComputedStyle(el).visibility === 'hidden') continue;
            if (el.closest('.sr-only, [hidden], dialog:not([open])')) continue;
            let clipped = false;
            for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
                if (scrolls(up)) { clipped = true; break; }
            }
            if (clipped) continue;
            if (box.left < -0.5 || box.right > width + 0.5) {
                bad.push({ tag: el.tagName.toLowerCase(), id: el.id, cls: String(el.className).slice(0, 40),
                           left: Math.round(box.left), right: Math.round(box.right) });
            }
        }
        return { scrollWidth: document.documentElement.scrollWidth, innerWidth: width, bad };
    }""")


def assert_fits_the_screen(page: Any) -> None:
    found = overflowing_elements(page)
    assert found["scrollWidth"] <= found["innerWidth"], found
    assert found["bad"] == [], found
