"""The middleware's pages in a real headless Chromium (Debian chromium + chromium-driver,
driven by Selenium): they render under their strict CSP (the nonce'd stylesheet applies, no
violation is reported), stay readable at 320 px width without horizontal scrolling, carry
the correlation id that the logs carry; the logout confirmation form works through the
provider and back; and a whole sign-in is clicked through the development provider's page.

The demo (built in-process with fcplus_wsgi.cli.build_demo, served on loopback) is walked
through as a citizen would: the official button, the development provider's page, the
claims, logout, a refusal, and the button reached and activated with the keyboard alone;
every page checked at 320 px and 1280 px without horizontal scrolling. Its screenshots go
to one temporary folder whose path the run prints (other screenshots go to tmp_path).
Skipped, with the reason, only when chromium or chromedriver is not installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.devstack import DevStack, dev_stack
from tests.support.evil_provider import EvilStack, evil_stack
from tests.support.servers import free_port, serve_wsgi

WebDriver = webdriver.Chrome

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                                 if os.path.exists("/usr/lib/chromium/chromedriver") else None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are needed (Debian: apt-get install -y chromium chromium-driver)")

NARROW = 320
TOLERANCE = 2  # sub-pixel rounding


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach the network
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})  # headless ignores --lang
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    chrome.set_page_load_timeout(20)
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def browser(driver: WebDriver) -> Iterator[WebDriver]:
    """The module's Chromium, reset: desktop width, no cookies, console log drained."""
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get_log("browser")
    yield driver
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def app_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What reached the app, minus Chromium's own /favicon.ico (a public path)."""
    return [c for c in calls if c.get("path") != "/favicon.ico"]


def narrow(driver: WebDriver) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": NARROW, "height": 640, "deviceScaleFactor": 2, "mobile": True})


def csp_violations(driver: WebDriver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]]


def check_readable_page(driver: WebDriver, tmp_path: Path, name: str) -> None:
    """Rendered with its stylesheet, readable at 320 px: no horizontal scroll, nothing cut."""
    layout: dict[str, Any] = driver.execute_script("""
        const main = document.querySelector('main');
        const right = Math.max(...[...document.querySelectorAll('main *')].map(e => e.getBoundingClientRect().right));
        return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
                right: right, font: getComputedStyle(document.body).fontFamily,
                size: parseFloat(getComputedStyle(document.querySelector('p')).fontSize),
                border: getComputedStyle(main).borderTopStyle};
    """)
    assert layout["innerWidth"] == NARROW, layout  # the viewport meta makes the page use the device width
    assert layout["scrollWidth"] <= NARROW + TOLERANCE, layout
    assert layout["right"] <= NARROW + TOLERANCE, layout
    assert "Marianne" in layout["font"] and layout["border"] == "solid", layout  # the nonce'd style applied
    assert layout["size"] >= 14, layout
    shot = tmp_path / f"{name}.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000


@pytest.fixture
def evil(tmp_path: Path) -> Iterator[EvilStack]:
    with evil_stack(tmp_path) as s:
        yield s


@pytest.mark.parametrize(("error", "description", "heading"), [
    ("access_denied", None, "Connexion interrompue"),
    ("temporarily_unavailable", "L'opération a expiré, merci de réessayer plus tard." * 2,
     "Service d'identification indisponible"),
    ("server_error", "Y" * 400, "Service d'identification indisponible"),  # one unbroken word, capped
    ("<img/src=x/onerror=alert(1)>", "<script>document.title='pwned'</script>", "Service d'identification indisponible"),
    ("<img src=x onerror=alert(1)>", None, "Connexion refusée par sécurité"),  # a space: malformed callback
], ids=["access_denied", "long_description", "unbroken_word", "html_injection", "malformed"])
def test_error_pages_render_and_stay_readable_at_320px(browser: WebDriver, evil: EvilStack, tmp_path: Path,
                                                       error: str, description: str | None, heading: str) -> None:
    evil.provider.authorize_error = {"error": error, **({"error_description": description} if description else {})}
    narrow(browser)
    browser.get(evil.base + "/private/page")
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "correlation-id")))
    assert browser.current_url.startswith(evil.base + "/oidc/callback?")
    cid = browser.find_element(By.ID, "correlation-id").text
    assert re.fullmatch(r"[0-9a-f]{12}", cid)
    assert any(f"correlation_id={cid}" in line for line in evil.logs.lines)
    assert browser.find_element(By.TAG_NAME, "h1").text == heading
    assert browser.title != "pwned" and browser.execute_script("return document.scripts.length") == 0
    assert browser.find_elements(By.TAG_NAME, "img") == []
    check_readable_page(browser, tmp_path, "error")
    assert csp_violations(browser) == []
    assert app_calls(evil.calls) == []
    retry = browser.find_element(By.CSS_SELECTOR, "a.button")
    # Back to the page the login was for; a malformed callback names no login to go back to.
    expected = "/oidc/login" if error.startswith("<img src") else "/oidc/login?return_to=/private/page"
    assert retry.get_attribute("href") == evil.base + expected


def test_expired_attempt_page_at_320px(browser: WebDriver, evil: EvilStack, tmp_path: Path) -> None:
    narrow(browser)
    browser.get(evil.base + "/oidc/callback?state=" + "0" * 64 + "&code=x")
    assert "expiré" in browser.find_element(By.TAG_NAME, "main").text
    check_readable_page(browser, tmp_path, "expired")
    assert csp_violations(browser) == []


def test_english_first_when_the_browser_asks(browser: WebDriver, evil: EvilStack) -> None:
    evil.provider.authorize_error = {"error": "access_denied"}
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Accept-Language": "en-GB,en;q=0.9"}})
    try:
        browser.get(evil.base + "/private/page")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Sign-in interrupted"
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        browser.execute_cdp_cmd("Network.disable", {})


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevStack]:
    with dev_stack(tmp_path) as s:
        yield s


def click_through_provider(browser: WebDriver, stack: DevStack, identity: str, acr: str) -> dict[str, Any]:
    browser.get(stack.base + "/private/page?from=chromium")
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.accept")))
    assert browser.current_url.startswith(stack.issuer)
    browser.find_element(By.CSS_SELECTOR, f'input[name="identity"][value="{identity}"]').click()
    browser.find_element(By.CSS_SELECTOR, f'input[name="acr"][value="{acr}"]').click()
    browser.find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(stack.base + "/private/page"))
    seen: dict[str, Any] = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    return seen


def test_full_sign_in_by_clicking_through_the_development_provider(browser: WebDriver, dev: DevStack) -> None:
    seen = click_through_provider(browser, dev, "marie-martin", "eidas3")
    assert browser.current_url == dev.base + "/private/page?from=chromium"
    assert seen["path"] == "/private/page" and seen["query"] == "from=chromium"
    assert seen["acr"] == "eidas3" and seen["claims"]["family_name"] == "MARTIN" and seen["sub"].endswith("v1")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert cookies["fcplus"]["httpOnly"] and cookies["fcplus"]["sameSite"] == "Lax"
    assert not any(v.get("value") == seen["sub"] for v in cookies.values())
    # The session holds: another protected page without going back to the provider.
    browser.get(dev.base + "/private/other")
    assert json.loads(browser.find_element(By.TAG_NAME, "body").text)["sub"] == seen["sub"]


def test_refusing_at_the_provider_lands_on_the_clean_retry_page(browser: WebDriver, dev: DevStack,
                                                                tmp_path: Path) -> None:
    browser.get(dev.base + "/private/page")
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.refuse")))
    narrow(browser)
    browser.find_element(By.CSS_SELECTOR, "button.refuse").click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "correlation-id")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connexion interrompue"
    check_readable_page(browser, tmp_path, "refused")
    browser.find_element(By.CSS_SELECTOR, "a.button").click()  # "Réessayer": back at the provider
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(dev.issuer))
    assert app_calls(dev.calls) == []


def _body_of(browser: WebDriver, url: str) -> str:
    browser.get(url)
    return str(browser.find_element(By.TAG_NAME, "body").text)


def test_logout_confirmation_form_works(browser: WebDriver, dev: DevStack, tmp_path: Path) -> None:
    """A cross-site link to the logout path gets a confirmation page (no logout CSRF); its
    button signs out through the provider's end_session and lands back on the service. The
    form's submission is redirected to the provider, which the page's CSP form-action must
    allow, and Chromium enforces that."""
    sub = click_through_provider(browser, dev, "jean-dupont", "eidas2")["sub"]

    def elsewhere(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = f'<!doctype html><a id="out" href="{dev.base}/oidc/logout">Se déconnecter</a>'.encode()
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        return [body]

    narrow(browser)
    with serve_wsgi(elsewhere) as other:
        # Another site (localhost is not the same site as 127.0.0.1): Sec-Fetch-Site is cross-site.
        browser.get(other.replace("127.0.0.1", "localhost") + "/")
        browser.find_element(By.ID, "out").click()
        WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "form")))
    assert browser.current_url == dev.base + "/oidc/logout"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Se déconnecter ?"
    check_readable_page(browser, tmp_path, "logout-confirmation")
    assert csp_violations(browser) == []
    assert json.loads(_body_of(browser, dev.base + "/private/still"))["sub"] == sub  # not signed out by the link
    browser.back()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.TAG_NAME, "form")))
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url == dev.base + "/")
    assert csp_violations(browser) == []
    landed = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    assert landed["sub"] is None
    assert "fcplus" not in {c["name"] for c in browser.get_cookies()}
    browser.get(dev.base + "/private/page")  # signed out: back to the provider
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(dev.issuer))


# -- the demo, end to end, and the login page ---------------------------------------------------------

WIDE = 1280


@pytest.fixture(scope="module")
def shots(request: pytest.FixtureRequest) -> Path:
    """One folder for the demo's screenshots, printed so a developer can open it."""
    folder = Path(tempfile.mkdtemp(prefix="fcplus-wsgi-screenshots-"))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\nscreenshots of the demo's pages (320 and 1280 px): {folder}", flush=True)
    return folder


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    from fcplus_wsgi.cli import build_demo

    port, provider_port = free_port(), free_port()
    wrapped, provider, url = build_demo("127.0.0.1", port, provider_port, tmp_path / "demo")
    with serve_wsgi(provider, port=provider_port), serve_wsgi(wrapped, port=port):
        yield url.rstrip("/")


def at_width(driver: WebDriver, width: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 800})


def check_both_widths(driver: WebDriver, shots: Path, name: str) -> None:
    """At 320 and 1280 px: the page uses the device width, nothing scrolls sideways, no CSP
    violation; a screenshot of each."""
    for width in (NARROW, WIDE):
        at_width(driver, width)
        layout: dict[str, Any] = driver.execute_script(
            "return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth};")
        assert layout["inner"] == width and layout["scroll"] <= width + TOLERANCE, (name, layout)
        driver.save_screenshot(str(shots / f"{name}-{width}.png"))
    assert csp_violations(driver) == []


def check_official_button(driver: WebDriver, label: str, help_text: str, help_url: str) -> Any:
    button = driver.find_element(By.CSS_SELECTOR, "a.fcw-connect")
    assert button.accessible_name == label
    assert driver.find_element(By.CSS_SELECTOR, ".fcw-connect__logo").get_attribute("aria-hidden") == "true"
    help_link = driver.find_element(By.CSS_SELECTOR, ".fcw-connect-help a")
    assert (help_link.text, help_link.get_attribute("href"), help_link.get_attribute("target")) == \
        (help_text, help_url, "_blank")
    assert help_link.get_attribute("title") == help_text + " - nouvelle fenêtre"
    assert "noopener" in str(help_link.get_attribute("rel"))
    return button


def test_demo_sign_in_claims_and_logout(browser: WebDriver, demo: str, shots: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="fcplus_wsgi.flow")
    browser.get(demo + "/")
    assert browser.find_element(By.CSS_SELECTOR, ".fcw-connect-sentence").text.startswith(
        "FranceConnect+ est la solution proposée par l’État")
    button = check_official_button(browser, "S’identifier avec FranceConnect+", "Qu’est-ce que FranceConnect+ ?",
                                   "https://franceconnect.gouv.fr/france-connect-plus")
    assert browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", button) == "rgb(0, 0, 145)"
    check_both_widths(browser, shots, "demo-home")
    browser.find_element(By.CSS_SELECTOR, "a.fcw-connect").click()
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.accept")))
    check_both_widths(browser, shots, "provider-page")
    browser.find_element(By.CSS_SELECTOR, 'input[name="identity"][value="marie-martin"]').click()
    browser.find_element(By.CSS_SELECTOR, 'input[name="acr"][value="eidas3"]').click()
    browser.find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url == demo + "/private/")
    claims = browser.find_element(By.ID, "claims").text
    assert "MARTIN" in claims and "eidas3" in browser.find_element(By.TAG_NAME, "main").text
    assert browser.find_element(By.CSS_SELECTOR, ".account").text.startswith("Connecté·e : Marie")
    check_both_widths(browser, shots, "demo-claims")  # was 740 px wide on a phone
    browser.find_element(By.ID, "logout").click()  # a same-origin link: no confirmation asked
    WebDriverWait(browser, 10).until(lambda d: d.current_url == demo + "/")
    assert browser.find_elements(By.CSS_SELECTOR, "a.fcw-connect")  # signed out: the login is asked again
    assert browser.find_element(By.CSS_SELECTOR, ".account").text == "Non connecté·e"
    # The demo's log lines name the provider it really talks to.
    lines = [r.getMessage() for r in caplog.records if r.name == "fcplus_wsgi.flow"]
    assert any("fcplus.login.success provider=fcplus-development-provider " in line for line in lines), lines
    assert not any("provider=fcplus-integration" in line for line in lines)
    browser.get(demo + "/private/")
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.accept")))


def test_demo_by_keyboard_then_refusal(browser: WebDriver, demo: str, shots: Path) -> None:
    """Tab alone reaches the button, which shows its focus ring; Enter follows it; refusing at
    the provider lands on the friendly page, readable at both widths."""
    browser.get(demo + "/")
    body = browser.find_element(By.TAG_NAME, "body")
    for _ in range(12):
        body.send_keys(Keys.TAB) if _ == 0 else browser.switch_to.active_element.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
        if "fcw-connect" in (focused.get_attribute("class") or "").split():
            break
    else:
        pytest.fail("twelve Tab presses never reached the sign-in button")
    ring = browser.execute_script("const s = getComputedStyle(document.activeElement);"
                                  "return [s.outlineStyle, s.outlineWidth, s.outlineColor];")
    assert ring == ["solid", "2px", "rgb(10, 118, 246)"], ring
    browser.save_screenshot(str(shots / "demo-button-focused.png"))
    focused.send_keys(Keys.ENTER)
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.refuse")))
    browser.find_element(By.CSS_SELECTOR, "button.refuse").click()
    WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "correlation-id")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connexion interrompue"
    provider_line = browser.find_element(By.CSS_SELECTOR, "p.provider")  # quoted outside the French text
    assert provider_line.find_element(By.CSS_SELECTOR, "span").get_attribute("lang") == ""
    assert "access_denied" not in browser.find_element(By.CSS_SELECTOR, "section[lang=fr]").text
    check_both_widths(browser, shots, "demo-refused")


@pytest.fixture
def paged(tmp_path: Path) -> Iterator[DevStack]:
    with dev_stack(tmp_path, settings={"login_page": "true", "step_up": "/private/strong:eidas3"}) as s:
        yield s


def test_login_page_shows_the_button_and_keeps_the_return(browser: WebDriver, paged: DevStack, shots: Path) -> None:
    browser.get(paged.base + "/private/strong?x=1")  # a protected page: to the login page first
    assert urlsplit(browser.current_url).path == "/oidc/login"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Connexion"
    check_official_button(browser, "S’identifier avec FranceConnect+", "Qu’est-ce que FranceConnect+ ?",
                          "https://franceconnect.gouv.fr/france-connect-plus")
    english = browser.find_element(By.CSS_SELECTOR, "section[lang=en]").text
    assert "FranceConnect+ is the solution" in english and "What is FranceConnect+?" in english
    check_both_widths(browser, shots, "login-page")
    browser.find_element(By.CSS_SELECTOR, "a.fcw-connect").click()
    WebDriverWait(browser, 10).until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button.accept")))
    browser.find_element(By.CSS_SELECTOR, 'input[name="acr"][value="eidas3"]').click()
    browser.find_element(By.CSS_SELECTOR, "button.accept").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url == paged.base + "/private/strong?x=1")
    assert json.loads(browser.find_element(By.TAG_NAME, "body").text)["acr"] == "eidas3"
