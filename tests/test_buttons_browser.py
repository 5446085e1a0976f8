"""Our sign-in buttons next to the DSFR's own "Bouton FranceConnect" component, in Chromium.

The reference is the component exactly as `@gouvfr/dsfr` ships it (pinned in
tests/dsfr/package.json, installed by scripts/test): its own CSS and its documented markup,
served on loopback. Ours is fcplus_wsgi.buttons. For each platform and theme the test
compares the size, the text, the help link, the colours (idle and hovered) and the pixels
of the button itself; a pixel differs when a channel differs by more than 48 of 255, and
at most 0.5 % of them may (room for antialiasing of the SVG edges and glyphs across
Chromium builds; on Debian's Chromium both render identically, 0 %). A recoloured logo
alone changes about 2.6 % of the pixels: the negative control below proves it is seen.
Fonts: neither page loads Marianne (the DSFR's font files are not served), so both fall
back to the same system font.

Skipped, with the reason, when chromium/chromedriver or the npm reference is missing.
"""

from __future__ import annotations

import io
import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from fcplus_wsgi.buttons import button_html, button_styles
from tests.support.servers import serve_wsgi
from tests.test_pages_browser import CHROMEDRIVER, CHROMIUM, WebDriver, driver  # noqa: F401  (fixture)

PIL = pytest.importorskip("PIL.Image", reason="Pillow is needed to compare pixels (pip install -e .[test])")

DSFR = Path(__file__).parent / "dsfr" / "node_modules" / "@gouvfr" / "dsfr" / "dist"
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver are needed"),
    pytest.mark.skipif(not (DSFR / "component" / "connect" / "connect.min.css").exists(),
                       reason="the DSFR reference is installed by scripts/test (npm ci --prefix tests/dsfr)"),
]

CHANNEL = 48
TOLERANCE = 0.005

# The DSFR documentation's markup for each variant (doc/component/connect, "Code").
REFERENCE = {
    "fcplus": ("fr-connect fr-connect--plus", "FranceConnect", "https://franceconnect.gouv.fr/france-connect-plus",
               "Qu’est-ce que FranceConnect+ ?"),
    "franceconnect": ("fr-connect", "FranceConnect", "https://franceconnect.gouv.fr/",
                      "Qu’est-ce que FranceConnect ?"),
    "proconnect": ("fr-connect fr-connect--pro", "ProConnect", "https://www.proconnect.gouv.fr/",
                   "Qu’est-ce que ProConnect ?"),
}

PAGE = """<!doctype html><html lang="fr"{theme}><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{head}</head>
<body><main id="main" style="padding:24px">{body}</main></body></html>"""


def reference_page(platform: str, dark: bool) -> str:
    classes, brand, url, text = REFERENCE[platform]
    body = (f'<div class="fr-connect-group"><button class="{classes}" type="button" id="button">'
            f'<span class="fr-connect__login">S’identifier avec</span><span class="fr-connect__brand">{brand}</span>'
            f'</button><p><a id="help" href="{url}" target="_blank" rel="noopener" '
            f'title="{text} - nouvelle fenêtre">{text}</a></p></div>')
    head = ('<link rel="stylesheet" href="/dsfr/core/core.min.css"><link rel="stylesheet" '
            'href="/dsfr/component/connect/connect.min.css">'
            + ('<link rel="stylesheet" href="/dsfr/scheme/scheme.min.css">' if dark else ""))
    return PAGE.format(theme=' data-fr-theme="dark"' if dark else "", head=head, body=body)


def our_page(platform: str, dark: bool) -> str:
    # The DSFR's page background and body font, which the component sits on.
    head = (f'{button_styles()}<style>body{{margin:0;font-family:"Marianne",arial,sans-serif;font-size:1rem;'
            f'line-height:1.5rem;background:{"#161616" if dark else "#fff"}}}</style>')
    body = str(button_html(platform, "/signed-in", theme="dark" if dark else "light", sentence=False))
    body = body.replace('class="fcw-connect ', 'id="button" class="fcw-connect ', 1).replace(
        '<a href="http', '<a id="help" href="http', 1)
    return PAGE.format(theme="", head=head, body=body)


def pages(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    path: str = environ["PATH_INFO"]
    if path.startswith("/dsfr/"):
        target = (DSFR / path[len("/dsfr/"):]).resolve()
        if DSFR.resolve() in target.parents and target.suffix == ".css" and target.is_file():
            start_response("200 OK", [("Content-Type", mimetypes.guess_type(str(target))[0] or "text/css")])
            return [target.read_bytes()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])  # fonts: not served on purpose
        return [b""]
    parts = path.strip("/").split("/")
    if len(parts) != 3:  # Chromium's /favicon.ico
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b""]
    kind, platform, theme = parts
    html = (reference_page if kind == "ref" else our_page)(platform, theme == "dark")
    if environ.get("QUERY_STRING") == "drift":  # the negative control: a recoloured logo
        html = html.replace("</head>", "<style>.fcw-connect__logo{filter:hue-rotate(90deg)}</style></head>")
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [html.encode()]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_wsgi(pages) as base:
        yield base


def measure(browser: WebDriver, url: str) -> dict[str, Any]:
    browser.get(url)
    button = browser.find_element(By.ID, "button")
    facts: dict[str, Any] = browser.execute_script("""
        const b = document.getElementById('button'), a = document.getElementById('help');
        const r = b.getBoundingClientRect(), s = getComputedStyle(b), l = getComputedStyle(a);
        return {width: r.width, height: r.height, text: b.innerText.replace(/\\s+/g, ' ').trim(),
                background: s.backgroundColor, color: s.color, helpColor: l.color,
                helpSize: l.fontSize, helpTop: a.getBoundingClientRect().top - r.bottom,
                href: a.href, target: a.target, title: a.title, helpText: a.innerText};
    """)
    facts["png"] = button.screenshot_as_png
    ActionChains(browser).move_to_element(button).perform()
    facts["hover"] = browser.execute_script("return getComputedStyle(document.getElementById('button')).backgroundColor")
    ActionChains(browser).move_by_offset(0, 300).perform()
    return facts


def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two computed `rgb(r, g, b)` colours."""
    def luminance(css: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", css)[:3]]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def differing_share(png_a: bytes, png_b: bytes) -> float:
    a = PIL.open(io.BytesIO(png_a)).convert("RGB")
    b = PIL.open(io.BytesIO(png_b)).convert("RGB")
    assert a.size == b.size, (a.size, b.size)
    raw_a, raw_b = a.tobytes(), b.tobytes()
    differing = sum(1 for i in range(0, len(raw_a), 3)
                    if max(abs(raw_a[i + c] - raw_b[i + c]) for c in range(3)) > CHANNEL)
    return differing / (a.size[0] * a.size[1])


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("platform", ["fcplus", "franceconnect", "proconnect"])
def test_button_matches_the_dsfr_component(driver: WebDriver, site: str, tmp_path: Path,  # noqa: F811
                                           platform: str, theme: str) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.set_window_size(1280, 800)
    ref = measure(driver, f"{site}/ref/{platform}/{theme}")
    ours = measure(driver, f"{site}/ours/{platform}/{theme}")
    (tmp_path / f"dsfr-{platform}-{theme}.png").write_bytes(ref["png"])
    (tmp_path / f"ours-{platform}-{theme}.png").write_bytes(ours["png"])
    for key in ("width", "height", "helpTop"):
        assert abs(ref[key] - ours[key]) <= 1, (key, ref[key], ours[key])
    # The DSFR's "+" is CSS generated content, ours is text (so screen readers read it too).
    assert ours["text"].removesuffix("+").strip() == ref["text"]
    assert ours["text"].endswith("+") == (platform == "fcplus")
    for key in ("background", "color", "hover", "helpColor", "helpSize", "target", "title", "helpText", "href"):
        assert ours[key] == ref[key], (key, ref[key], ours[key])
    # RGAA / WCAG AA: the label on the button, the help link on the page (the DSFR's colours).
    page_background = "rgb(22, 22, 22)" if theme == "dark" else "rgb(255, 255, 255)"
    assert contrast(ours["color"], ours["background"]) >= 4.5
    assert contrast(ours["color"], ours["hover"]) >= 4.5
    assert contrast(ours["helpColor"], page_background) >= 4.5
    share = differing_share(ref["png"], ours["png"])
    print(f"{platform} {theme}: {share:.2%} of the pixels differ")
    assert share <= TOLERANCE, f"{share:.2%} of the pixels differ; see {tmp_path}"


def test_the_comparison_sees_a_recoloured_logo(driver: WebDriver, site: str) -> None:  # noqa: F811
    """The tolerance is tight enough to catch the drift the platforms forbid: a recolouring."""
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    ref = measure(driver, f"{site}/ref/fcplus/light")
    drifted = measure(driver, f"{site}/ours/fcplus/light?drift")
    assert differing_share(ref["png"], drifted["png"]) > TOLERANCE
