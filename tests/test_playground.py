"""The playground in a real browser: Debian's Chromium, driven through its chromedriver by selenium,
against a real `monaco serve` (tests/support.py's served()).

Run alone with `pytest -m playground`. Without Chromium and its driver these tests fail rather than
skip: `make test` installs both when it runs as root. Every test leaves a screenshot under
build/playground/; `make screenshot` copies the README's (docs/playground.png) from there.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import yaml
from pydantic import ValidationError
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from monaco.api import playground
from monaco.api.app import create_app
from monaco.core.settings import Settings
from tests.support import Front, Rule, served

pytestmark = pytest.mark.playground

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "build" / "playground"
WAIT = 60  # seconds for a run to finish, compiles included

# Two languages added by configuration: one the editor has a grammar for (by its file's extension), one it
# has not, which is edited as plain text. Both run in the local sandbox with the host's tools.
EXTRA_LANGUAGES = {
    "sh": {"displayName": "POSIX shell", "version": "dash", "image": "debian:12-slim", "sourceFile": "main.sh",
           "run": "exec sh main.sh"},
    "awk": {"displayName": "AWK", "version": "mawk", "image": "debian:12-slim", "sourceFile": "main.awk",
            "run": "exec awk -f main.awk"},
}


def chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver; or a Chrome and its driver where a CI image ships those instead."""
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver") or shutil.which("chromedriver", path=os.environ.get("CHROMEWEBDRIVER", ""))
    if not (browser and driver):
        pytest.fail(
            "the playground's tests need Chromium and its driver: apt-get install chromium chromium-driver "
            "(`make test` installs them when it runs as root)"
        )
    return browser, driver


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server whose registry is the built-in one plus EXTRA_LANGUAGES."""
    registry = yaml.safe_load((REPO / "core" / "languages.yaml").read_text())
    registry["languages"].update(EXTRA_LANGUAGES)
    path = tmp_path_factory.mktemp("registry") / "languages.yaml"
    path.write_text(yaml.safe_dump(registry))
    with served(MONACO_LANGUAGES_FILE=str(path)) as base:
        yield base


@pytest.fixture(scope="module")
def front(url: str) -> Iterator[Front]:
    with Front(url) as proxy:
        yield proxy


@pytest.fixture
def prefixed(front: Front) -> Iterator[str]:
    """The front's URL, answering by `front.rules` for one test only."""
    yield front.url
    front.rules.clear()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    browser, chromedriver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1360,860",
        "--lang=en-US", "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-features=Translate,MediaRouter,OptimizationHints",
        # as in an air-gapped cluster: no name resolves but this machine's (a request elsewhere still shows in the log)
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    # Every Content-Security-Policy violation of every page, for the tests to read.
    chrome.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )})
    try:
        yield chrome
    finally:
        chrome.quit()


class Page:
    """The playground as a person uses it: the controls by their labels, the result as it reads."""

    def __init__(self, driver: webdriver.Chrome, url: str) -> None:
        self.driver, self.url = driver, url

    def open(self, fragment: str = "") -> Page:
        self.driver.get(self.url + "/" + fragment)
        self.wait(lambda: self.find("#run").is_enabled() and self.code() is not None, "the page to load its languages")
        return self

    def find(self, css: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def wait(self, condition: Callable[[], object], what: str, timeout: float = 10) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
            lambda _: condition(), message=f"waited {timeout} s for {what}"
        )

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    # ---- the controls
    def choose(self, language: str) -> None:
        Select(self.find("#language")).select_by_value(language)

    def languages(self) -> list[str]:
        return [o.text for o in Select(self.find("#language")).options]

    def code(self) -> str:
        text: str = self.js(
            "return [...document.querySelectorAll('.cm-content .cm-line')]"
            ".map(l => l.querySelector('.cm-placeholder') ? '' : l.textContent).join('\\n')"
        )
        return text

    def tokens(self) -> int:
        """How many highlighted tokens the editor shows (its own marks, such as matching brackets, aside)."""
        count: int = self.js(
            "return [...document.querySelectorAll('.cm-content .cm-line span')]"
            ".filter(s => ![...s.classList].some(c => c.startsWith('cm-'))).length"
        )
        return count

    def type_code(self, text: str) -> None:
        """Types into the editor as a person would (what the editor adds, such as closing brackets, stays)."""
        content = self.find(".cm-content")
        content.click()
        content.send_keys(Keys.CONTROL, "a")
        content.send_keys(Keys.DELETE)
        content.send_keys(text)

    def set_stdin(self, text: str) -> None:
        box = self.find("#stdin")
        box.clear()
        box.send_keys(text)

    def set_limit(self, which: str, value: str) -> None:
        box = self.find(f"#{which}")
        box.clear()
        box.send_keys(value)

    def run(self) -> dict[str, Any]:
        self.find("#run").click()
        return self.result()

    def run_with_keys(self) -> dict[str, Any]:
        webdriver.ActionChains(self.driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
        return self.result()

    def result(self, timeout: float = WAIT) -> dict[str, Any]:
        """The result as the page shows it, once the run has finished."""
        self.wait(lambda: self.find("#verdict").get_attribute("data-verdict"), "the run to finish", timeout)

        def stream(box: str, pre: str) -> str | None:
            return None if self.find(box).get_attribute("hidden") is not None else self.js(
                "return document.querySelector(arguments[0]).textContent", pre)

        return {
            "verdict": self.find("#verdict").get_attribute("data-verdict"),
            "title": self.find("#verdict-text").text,
            "colour": self.js("return getComputedStyle(document.querySelector('#verdict')).color"),
            "detail": self.find("#detail").text,
            "stdout": stream("#stdout-box", "#stdout"),
            "stderr": stream("#stderr-box", "#stderr"),
            "compile": stream("#compile-box", "#compile-output"),
            "time": self.find("#time").text,
            "memory": self.find("#mem").text,
            "exit": self.find("#exit").text,
        }

    def log(self, kind: str) -> list[dict[str, Any]]:
        """The browser's log of `kind` (performance: the DevTools network events; browser: the console) since
        the last call."""
        entries: list[dict[str, Any]] = self.driver.get_log(kind)  # type: ignore[no-untyped-call]  # selenium's
        return entries

    def history(self) -> list[str]:
        return [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, "#history li:not(.empty)")]

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path


@pytest.fixture
def page(driver: webdriver.Chrome, url: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh visit: nothing kept from an earlier test (history, draft); a screenshot afterwards."""
    driver.get(url + "/openapi.json")  # same origin, to reach its localStorage before the page reads it
    driver.execute_script("localStorage.clear()")
    p = Page(driver, url)
    p.log("performance")  # drop what was logged so far
    p.open()
    yield p
    with contextlib.suppress(WebDriverException):  # a browser that died has failed the test already
        p.screenshot(request.node.name)


def link(**program: Any) -> str:
    """The fragment of a playground link (the page's own format: base64url of the program's JSON)."""
    return "#run=" + base64.urlsafe_b64encode(json.dumps(program).encode()).decode().rstrip("=")


# ---- the tests ----------------------------------------------------------------------------------


def test_write_a_program_run_it_and_read_its_output(page: Page) -> None:
    page.choose("python")
    page.type_code('print("hello from", 6 * 7)')
    assert page.code() == 'print("hello from", 6 * 7)'
    # highlighted: the string is a token of its own
    assert page.tokens() >= 2
    result = page.run()
    assert result["verdict"] == "ok", result
    assert result["title"] == "OK" and result["colour"] == "rgb(26, 127, 55)"  # in words and in green
    assert result["stdout"] == "hello from 42\n"
    assert result["stderr"] is None and result["compile"] is None  # nothing to say: not shown
    assert result["time"].endswith("ms") and result["memory"].endswith("MB") and result["exit"] == "0"


def test_a_compile_error_shows_the_compiler_output(page: Page) -> None:
    page.choose("c")
    page.type_code("int main() { return undeclared_name; }")
    assert page.code() == "int main() { return undeclared_name; }"  # the editor closed the brace, typing skipped it
    result = page.run()
    assert result["verdict"] == "compile_error" and result["title"] == "Compile error", result
    assert result["compile"] and "undeclared_name" in result["compile"] and "error" in result["compile"]
    assert result["stdout"] is None  # a program that did not compile wrote nothing


def test_stdin_stderr_and_exit_status_apart_run_with_ctrl_enter(page: Page) -> None:
    page.choose("python")
    page.type_code("import sys; print(input()[::-1]); sys.stderr.write('to stderr'); sys.exit(3)")
    page.set_stdin("olleh")
    result = page.run_with_keys()
    assert result["verdict"] == "runtime_error" and result["title"] == "Runtime error", result
    assert result["stdout"] == "hello\n" and result["stderr"] == "to stderr" and result["exit"] == "3"
    assert "status 3" in result["detail"]


def test_cancel_a_long_running_program(page: Page) -> None:
    page.choose("python")
    page.type_code("import time; print('started', flush=True); time.sleep(25)")
    page.set_limit("timeout", "30")
    assert page.find("#cancel").get_attribute("hidden") is not None  # only while a run is in flight
    page.find("#run").click()
    page.wait(lambda: page.find("#verdict-text").text == "Running", "the program to run")
    assert not page.find("#run").is_enabled()
    started = time.monotonic()
    page.find("#cancel").click()
    result = page.result(timeout=10)
    assert result["verdict"] == "cancelled" and result["title"] == "Cancelled", result
    assert time.monotonic() - started < 10  # stopped, not left to its 25 s
    assert page.find("#cancel").get_attribute("hidden") is not None and page.find("#run").is_enabled()


def test_limits_stay_within_the_languages_maxima(page: Page) -> None:
    page.choose("python")
    assert (page.find("#timeout").get_attribute("max"), page.find("#memory").get_attribute("max")) == ("30", "512")
    page.choose("java")
    assert (page.find("#timeout").get_attribute("max"), page.find("#memory").get_attribute("max")) == ("30", "1024")
    page.choose("python")
    page.type_code("while True: pass")
    page.set_limit("memory", "4096")
    page.find("#run").click()  # refused in the page: the field says why, nothing is sent
    assert page.js("return document.querySelector('#memory').validity.rangeOverflow") is True
    assert page.find("#verdict-text").text == "Not run yet"
    page.set_limit("memory", "64")
    page.set_limit("timeout", "1")
    result = page.run()
    assert result["verdict"] == "timeout" and result["title"] == "Time limit exceeded", result
    assert result["detail"] == "The program ran longer than 1 s."  # the server's words


def test_a_language_added_by_configuration_appears(page: Page) -> None:
    names = page.languages()
    assert "POSIX shell (dash)" in names and "AWK (mawk)" in names and "Python (3.11)" in names
    page.choose("sh")  # known by its file's extension: highlighted
    assert page.find(".cm-editor").get_attribute("data-grammar") == "sh"
    assert page.code().startswith("read -r name")  # and it has a first program
    page.choose("awk")  # no grammar: plain text, and no first program
    assert page.find(".cm-editor").get_attribute("data-grammar") == "plain"
    assert page.code() == ""
    page.type_code('{ print toupper($0) "!" }')
    assert page.tokens() == 0
    page.set_stdin("shout")
    result = page.run()
    assert result["verdict"] == "ok" and result["stdout"] == "SHOUT!\n", result


def test_a_link_reopens_the_same_program_language_and_input(page: Page) -> None:
    page.choose("cpp")
    page.type_code('#include <iostream>\nint main() { std::string s; std::cin >> s; std::cout << s.size(); }')
    page.set_stdin("four")
    page.set_limit("timeout", "5")
    code = page.code()
    page.find("#share").click()
    shared = page.wait(lambda: "#run=" in page.driver.current_url and page.driver.current_url, "the link")
    page.js("localStorage.clear()")  # what the link holds must be enough
    page.driver.get(page.url + "/openapi.json")
    page.driver.get(shared)
    page.wait(lambda: page.code() == code, "the program from the link")
    assert Select(page.find("#language")).first_selected_option.get_attribute("value") == "cpp"
    assert page.find("#stdin").get_attribute("value") == "four"
    assert page.find("#timeout").get_attribute("value") == "5"
    assert page.run()["stdout"] == "4"
    # and a link made elsewhere, in the same format, opens too
    page.open(link(language="python", code="print(input() * 2)", input="ab"))
    assert page.code() == "print(input() * 2)" and page.run()["stdout"] == "abab\n"


def test_the_last_runs_are_kept_in_the_browser(page: Page) -> None:
    page.choose("python")
    page.type_code("print('first')")
    page.run()
    page.type_code("print(undefined_name)")
    page.run()
    page.open()  # a reload: the history and the draft are kept
    runs = page.history()
    assert len(runs) == 2 and runs[0].startswith("Runtime error · Python") and "print(undefined_name)" in runs[0]
    assert runs[1].startswith("OK · Python") and "print('first')" in runs[1]
    assert page.code() == "print(undefined_name)"  # the draft
    page.driver.find_elements(By.CSS_SELECTOR, "#history button")[1].click()
    assert page.code() == "print('first')"


def test_the_page_loads_nothing_from_another_origin(page: Page) -> None:
    for log in ("performance", "browser"):
        page.log(log)  # drop the fixture's visit to /openapi.json (its favicon.ico is a 404)
    page.open()
    page.choose("python")
    page.type_code("print(1)")
    page.run()
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))
    logged = [json.loads(entry["message"])["message"] for entry in page.log("performance")]
    requested = [m["params"]["request"]["url"] for m in logged if m["method"] == "Network.requestWillBeSent"]
    loaded = page.js("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(u.split("?")[0].endswith("/playground/app.js") for u in requested + loaded)  # the logs are real
    assert any(u.endswith("/languages") for u in requested) and any("/result?id=" in u for u in requested)
    elsewhere = [u for u in requested + loaded if not u.startswith(origin + "/")]
    assert elsewhere == []
    assert page.js("return window.__violations") == []  # nothing the Content-Security-Policy had to block
    errors = [e["message"] for e in page.log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_it_works_under_a_path_as_behind_an_ingress(page: Page, prefixed: str) -> None:
    page.url = prefixed  # the page at /monaco/, the API under /monaco/ too
    page.log("performance")
    page.open()
    page.choose("c")
    page.type_code('#include <stdio.h>\nint main(void) { puts("through /monaco"); }')
    assert page.run()["stdout"] == "through /monaco\n"
    assert page.find("footer a").get_attribute("href") == prefixed + "/openapi.json"
    logged = [json.loads(entry["message"])["message"] for entry in page.log("performance")]
    requested = [m["params"]["request"]["url"] for m in logged if m["method"] == "Network.requestWillBeSent"]
    assert any("/submit" in u for u in requested)
    assert [u for u in requested if not u.startswith(prefixed + "/")] == []


# Every verdict in words and in its colour (computed style, rgb): green, red, amber, grey, purple.
GREEN, RED, AMBER, GREY, PURPLE = "rgb(26, 127, 55)", "rgb(198, 40, 40)", "rgb(154, 103, 0)", "rgb(93, 102, 119)", \
    "rgb(123, 63, 160)"
VERDICTS = {
    "ok": ("OK", GREEN), "wrong_answer": ("Wrong answer", RED), "runtime_error": ("Runtime error", RED),
    "compile_error": ("Compile error", RED), "timeout": ("Time limit exceeded", AMBER),
    "memory_limit": ("Memory limit exceeded", AMBER), "output_limit": ("Output limit exceeded", AMBER),
    "cancelled": ("Cancelled", GREY), "system_error": ("System error", PURPLE),
}


def test_every_verdict_reads_in_words_and_its_colour(page: Page, front: Front, prefixed: str) -> None:
    """The verdicts a run in this page cannot cause (wrong_answer needs an expectedOutput, system_error a
    broken Monaco) included: the server's result, as GET /result gives it, with each verdict in turn."""
    page.url = prefixed
    page.open()
    page.choose("python")
    page.type_code("print('real run')")
    real = page.run()
    assert real["verdict"] == "ok", real
    for verdict, (title, colour) in VERDICTS.items():
        body = {"id": "x", "status": "completed" if verdict == "ok" else "failed", "verdict": verdict,
                "language": "python", "output": "", "stderr": "", "compileOutput": "", "exitCode": None,
                "executionTimeMs": 1.5, "totalTime": 3, "memoryKb": 2048, "truncated": False, "message": ""}
        front.rules[:] = [Rule("GET", "/result", 200, {"content-type": "application/json"}, json.dumps(body).encode())]
        shown = page.run()
        assert (shown["verdict"], shown["title"], shown["colour"]) == (verdict, title, colour), shown
        assert shown["detail"] and shown["time"] == "1.5 ms" and shown["memory"] == "2.0 MB"
    assert [line.split(" · ")[0] for line in page.history()][:len(VERDICTS)] == [t for t, _ in VERDICTS.values()][::-1]


def test_memory_and_output_limits_and_unicode_for_real(page: Page) -> None:
    page.choose("python")
    page.type_code("x = bytearray(300 * 1024 * 1024)\nprint(len(x))")
    page.set_limit("memory", "64")
    result = page.run()
    assert (result["verdict"], result["title"], result["colour"]) == ("memory_limit", "Memory limit exceeded", AMBER)
    assert result["detail"] == "The program was killed for using more memory than its limit.", result
    # typed as escapes (chromedriver types no character beyond the BMP), printed as the characters
    page.type_code("import sys\nprint('h\\u00e9llo \\u2713 \\u65e5\\u672c \\U0001f642')\n"
                   "sys.stderr.write('\\u00bfqu\\u00e9?')")
    result = page.run()
    assert result["stdout"] == "h\u00e9llo \u2713 \u65e5\u672c \U0001f642\n" and result["stderr"] == "\u00bfqu\u00e9?"
    # a flood: cut at the server's limit, marked so, and the page stays quick
    page.type_code("while True: print('x' * 79)")
    result = page.run()
    assert (result["verdict"], result["title"], result["colour"]) == ("output_limit", "Output limit exceeded", AMBER)
    assert 60_000 <= len(result["stdout"] or "") <= 64 * 1024, len(result["stdout"] or "")
    assert "truncated" in (page.find("#stdout-box").get_attribute("class") or "")
    assert "cut at the server" in page.js(
        "return getComputedStyle(document.querySelector('#stdout-box h2'), '::after').content")
    started = time.monotonic()
    assert page.js("return document.querySelector('#stdout').getBoundingClientRect().height") <= 330  # scrolls
    page.type_code("print(1)")
    assert page.run()["stdout"] == "1\n" and time.monotonic() - started < 10


def test_limits_that_are_garbage_or_out_of_range_are_refused_in_the_page(page: Page) -> None:
    page.choose("python")
    page.type_code("print('limits')")
    for field_id, typed, flaw in [("timeout", "1e", "badInput"), ("timeout", "0", "rangeUnderflow"),
                                  ("timeout", "31", "rangeOverflow"), ("memory", "8", "rangeUnderflow"),
                                  ("memory", "64.5", "stepMismatch"), ("memory", "513", "rangeOverflow")]:
        page.set_limit(field_id, typed)
        page.find("#run").click()
        assert page.js(f"return document.querySelector('#{field_id}').validity.{flaw}") is True, (field_id, typed)
        assert page.find("#verdict-text").text == "Not run yet", (field_id, typed)  # nothing sent
        page.set_limit(field_id, "")  # empty: the language's default
    assert page.run()["stdout"] == "limits\n"


def shows_error(page: Page, status: str) -> bool:
    return bool(page.find("#verdict").get_attribute("data-error") == status)


def test_refusals_and_a_lost_server_are_said_in_the_page(page: Page, front: Front, prefixed: str) -> None:
    # Monaco's own 413, for real: stdin over MONACO_MAX_INPUT_BYTES
    page.choose("python")
    page.type_code("print(len(input()))")
    page.js("const box = document.querySelector('#stdin'); box.value = 'x'.repeat(1100000);"
            "box.dispatchEvent(new Event('input'))")
    page.find("#run").click()
    refused = page.wait(lambda: page.find("#verdict").get_attribute("data-error"), "the refusal")
    assert (refused, page.find("#verdict-text").text) == ("413", "Too large")
    assert "limit" in page.find("#detail").text and page.find("#run").is_enabled()
    page.set_stdin("abc")

    page.url = prefixed
    page.open()
    page.choose("python")
    page.type_code("print(len(input()))")
    page.set_stdin("abc")
    queue_full = b'{"error": "the queue is full (100 submissions waiting); retry in 5 s"}'
    cases = [
        (Rule("POST", "/submit", 429, {"content-type": "application/json", "retry-after": "5"}, queue_full),
         "429", "Server busy", "The queue is full (100 submissions waiting); retry in 5 s."),
        (Rule("POST", "/submit", 413, {"content-type": "text/html"}, b"<html><h1>413 Request Entity Too Large</h1>"),
         "413", "Too large", "The program or its input is too large for the server (HTTP 413): make it smaller."),
        (Rule("POST", "/submit", 502, {"content-type": "text/html"}, b"<html>Bad Gateway</html>"),
         "502", "Cannot reach Monaco", "Monaco is not answering behind its proxy (HTTP 502): try again in a moment."),
        (Rule("POST", "/submit", None), "0", "Cannot reach Monaco", "Monaco cannot be reached: is the server running?"),
    ]
    for rule, status, title, detail in cases:
        front.rules[:] = [rule]
        page.find("#run").click()
        page.wait(functools.partial(shows_error, page, status), f"the page to say {title}")
        assert (page.find("#verdict-text").text, page.find("#detail").text) == (title, detail)
        assert page.find("#run").is_enabled() and page.find("#cancel").get_attribute("hidden") is not None
    # a run whose server drops away for a moment while it runs: the page asks again and shows the result
    blips = [Rule("GET", "/result", None, times=2), Rule("GET", "/result", 502, {}, b"Bad Gateway", times=1)]
    front.rules[:] = blips
    assert page.run()["stdout"] == "3\n"
    assert [rule.times for rule in blips] == [0, 0]
    # and a page opened while Monaco is away says so
    front.rules[:] = [Rule("GET", "/languages", None)]
    page.driver.get(prefixed + "/")
    page.wait(lambda: page.find("#verdict-text").text == "Cannot load the languages", "the page to say so")
    assert page.find("#detail").text == "Monaco cannot be reached: is the server running?"
    assert not page.find("#run").is_enabled()


def test_every_control_has_a_name_and_the_keyboard_reaches_them(page: Page) -> None:
    unnamed = page.js(
        "return [...document.querySelectorAll('input, select, textarea, button, [contenteditable=true]')]"
        ".filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim()))"
        ".map(e => e.outerHTML.slice(0, 80))"
    )
    assert unnamed == []
    page.choose("python")
    page.type_code("print(input())")
    assert page.js("return document.activeElement.getAttribute('aria-describedby')") == "editor-help"
    content = page.find(".cm-content")
    content.send_keys(Keys.TAB)  # Tab indents in the editor, Shift+Tab takes it back
    assert page.code() == "    print(input())"
    content.send_keys(Keys.SHIFT, Keys.TAB)
    assert page.code() == "print(input())"
    content.send_keys(Keys.ESCAPE, Keys.TAB)  # Esc, then Tab: on to the input
    assert page.js("return document.activeElement.id") == "stdin"
    webdriver.ActionChains(page.driver).send_keys("typed").key_down(Keys.CONTROL).send_keys(Keys.ENTER) \
        .key_up(Keys.CONTROL).perform()  # Ctrl+Enter from the input box runs too
    assert page.result()["stdout"] == "worldtyped\n"  # after the first program's sample input


def test_screenshot_for_the_readme(page: Page) -> None:
    """The picture in the README: a program with input, its result and the runs before it."""
    page.open(link(language="c", code="int main(void) { return missing; }\n", input=""))
    page.run()
    program = (
        "import sys\n\n"
        "def greet(name: str) -> str:\n"
        '    return f"Hello, {name}!"\n\n'
        "for line in sys.stdin:\n"
        "    print(greet(line.strip()))\n"
        'print(f"{sum(range(10**6))=}", file=sys.stderr)\n'
    )
    page.open(link(language="python", code=program, input="Ada\nGrace\nLinus\n"))
    result = page.run()
    assert result["stdout"] == "Hello, Ada!\nHello, Grace!\nHello, Linus!\n"
    page.js("document.activeElement.blur()")
    assert page.screenshot("playground").stat().st_size > 10_000


# ---- the HTTP side, no browser: what is served, how, and where ---------------------------------

STATIC = REPO / "api" / "static" / "playground"
SOURCES = REPO / "playground"


def test_the_committed_build_is_the_build_of_the_sources() -> None:
    """build-stamp.json, written by playground/build.mjs: a source changed without `make playground`, or a
    built file changed by hand, fails here (the same hash as build.mjs's sourcesHash)."""
    stamp = json.loads((SOURCES / "build-stamp.json").read_text())
    sources = sorted(f"src/{p.name}" for p in (SOURCES / "src").iterdir())
    files = ["package.json", "package-lock.json", "build.mjs", *sources]
    listing = "".join(f"{f} {hashlib.sha256((SOURCES / f).read_bytes()).hexdigest()}\n" for f in files)
    assert stamp["sources"] == hashlib.sha256(listing.encode()).hexdigest(), "run `make playground`"
    built = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in STATIC.iterdir()}
    assert built == stamp["outputs"], "a built file differs from the build: run `make playground`"
    lock = json.loads((SOURCES / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2 and all("integrity" in p for n, p in lock["packages"].items() if n)


def playground_app(settings: Settings, **fields: Any) -> httpx.AsyncClient:
    """The app's HTTP face without its back end started: the playground needs none."""
    app = create_app(settings.model_copy(update=fields))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")


def assets_of(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(\./playground/[^"]+|\.\./playground/[^"]+)"', page)


@pytest.mark.anyio
async def test_the_page_and_its_assets_are_served_with_a_strict_policy(settings: Settings) -> None:
    async with playground_app(settings) as http:
        first, second = await http.get("/"), await http.get("/")
        assert first.status_code == 200 and first.headers["content-type"] == "text/html; charset=utf-8"
        policy = first.headers["content-security-policy"]
        nonce = re.search(r'<meta name="monaco-nonce" content="([^"]+)">', first.text)
        assert nonce and f"style-src 'self' 'nonce-{nonce[1]}'" in policy
        assert nonce[1] not in second.text  # a new one for every page
        for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "img-src 'self'",
                          "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"):
            assert directive in policy.split("; ")
        assert "unsafe" not in policy and "http" not in policy
        assert first.headers["x-content-type-options"] == "nosniff"
        assert '<meta name="monaco-root" content="./">' in first.text and "{{" not in first.text
        types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
        assert {Path(urlsplit(a).path).suffix for a in assets_of(first.text)} == set(types)
        for asset in assets_of(first.text):
            r = await http.get(asset[1:], headers={"accept-encoding": "gzip"})
            assert r.status_code == 200 and r.headers["content-type"] == types[Path(urlsplit(asset).path).suffix]
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"  # the URL names the version
            assert r.content == (STATIC / Path(urlsplit(asset).path).name).read_bytes()  # decoded, if gzipped
            assert (await http.get(asset[1:], headers={"if-none-match": r.headers["etag"]})).status_code == 304
        app_js = await http.get("/playground/app.js", headers={"accept-encoding": "gzip"})
        assert app_js.headers["content-encoding"] == "gzip" and app_js.headers["cache-control"] == "no-cache"
        assert (await http.head("/")).status_code == 200
        assert (await http.get("/playground/index.html")).status_code == 404
        assert (await http.get("/playground/nope.js")).status_code == 404
        assert (await http.get("/", headers={"host": "evil.example"})).status_code == 400  # DNS rebinding


@pytest.mark.anyio
async def test_the_page_can_move_or_be_turned_off(settings: Settings) -> None:
    async with playground_app(settings, playground_path="/tools/play/") as http:
        page = await http.get("/tools/play/")
        assert page.status_code == 200 and '<meta name="monaco-root" content="../../">' in page.text
        assert all(a.startswith("../../playground/") for a in assets_of(page.text))
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/playground/app.js")).status_code == 200  # the assets stay under the API's root
    async with playground_app(settings, playground_path="") as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/playground/app.js")).status_code == 404
        assert (await http.get("/languages")).status_code == 200


@pytest.mark.parametrize(("path", "root"), [("/", "./"), ("/play", "./"), ("/play/", "../"), ("/a/b", "../"),
                                             ("/a/b/", "../../")])
def test_the_api_is_found_relative_to_the_page(path: str, root: str) -> None:
    """A browser resolves `root` against the page's URL: the API's root, under whatever prefix is in front."""
    assert playground.api_root(path) == root
    assert urljoin("https://example.com/prefix" + path, root) == "https://example.com/prefix/"


@pytest.mark.parametrize("path", ["play", "/a/../b", "/a//b", "/..", "/a b", "/a?b"])
def test_a_playground_path_that_is_no_path_is_refused(path: str) -> None:
    with pytest.raises(ValidationError, match="not a path for the playground"):
        Settings(playground_path=path)


@pytest.mark.parametrize("path", ["/submit", "/languages", "/playground/app.js"])
def test_a_playground_path_that_is_the_apis_is_refused(settings: Settings, path: str) -> None:
    with pytest.raises(ValueError, match="is a path of the API"):
        create_app(settings.model_copy(update={"playground_path": path}))
