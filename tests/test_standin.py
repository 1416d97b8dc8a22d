"""The stand-in over loopback, with httpx: NSE's layout, NSE's manners, and each fault on demand."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import brotli
import httpx
import pytest

from include.nse_standin.generate import generate
from include.nse_standin.server import Fault, StandIn, api_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 7, 5)
ZIP_PATH = "/content/historical/EQUITIES/2024/JUL/cm05JUL2024bhav.csv.zip"
CSV_PATH = "/products/content/sec_bhavdata_full_05072024.csv"
HOLIDAYS_API = "/api/holiday-master"
HOLIDAYS_JSON = {"CM": [{"tradingDate": "17-Jul-2024", "description": "Muharram"}]}


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nse")
    generate(DAY, DAY, root, symbols=80)
    trading = api_file(root, "holiday-master", {"type": "trading"})
    # Replaces the generated holiday master with a smaller answer the tests know.
    trading.parent.mkdir(parents=True, exist_ok=True)
    trading.write_text(json.dumps(HOLIDAYS_JSON))
    api_file(root, "holiday-master").write_text('{"any": []}')
    return root


@pytest.fixture()
def standin(nse_root):
    with StandIn(nse_root) as server:
        yield server


@pytest.fixture()
def http(standin):
    """A client with no encodings advertised, unless a test asks for one."""
    with httpx.Client(base_url=standin.url, headers={"Accept-Encoding": "identity"}) as client:
        yield client


def warm_up(http: httpx.Client, path: str = "/") -> httpx.Response:
    return http.get(path)


def holidays(http: httpx.Client) -> httpx.Response:
    return http.get(HOLIDAYS_API, params={"type": "trading"})


class TestArchive:
    def test_serves_files_byte_exact(self, standin, http, nse_root):
        """A ZIP and a CSV come back exactly as on disk, with NSE-like content types."""
        zipped = http.get(ZIP_PATH)
        assert zipped.status_code == 200
        assert zipped.content == (nse_root / ZIP_PATH.lstrip("/")).read_bytes()
        assert zipped.headers["content-type"] == "application/zip"
        assert "last-modified" in zipped.headers
        plain = http.get(CSV_PATH)
        assert plain.headers["content-type"] == "text/csv"
        assert plain.content == (nse_root / CSV_PATH.lstrip("/")).read_bytes()

    def test_missing_file_is_an_html_404(self, http):
        """A file NSE has not published is a 404 with an HTML page, as NSE answers."""
        response = http.get("/content/historical/EQUITIES/2024/JUL/cm06JUL2024bhav.csv.zip")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert response.text.startswith("<!DOCTYPE html>")

    def test_nothing_outside_the_root(self, http):
        """Dot-dot paths cannot climb out of the served directory."""
        assert http.get("/content/%2e%2e/%2e%2e/%2e%2e/etc/hostname").status_code == 404

    def test_brotli_when_asked(self, http, nse_root):
        """`Accept-Encoding: br` gets a brotli body; the bytes decode to the file."""
        response = http.get(CSV_PATH, headers={"Accept-Encoding": "br"})
        assert response.headers["content-encoding"] == "br"
        assert response.content == (nse_root / CSV_PATH.lstrip("/")).read_bytes()
        with http.stream("GET", CSV_PATH, headers={"Accept-Encoding": "br"}) as raw:
            body = b"".join(raw.iter_raw())
        assert brotli.decompress(body) == response.content
        assert len(body) < len(response.content)

    def test_gzip_and_identity(self, http):
        """gzip when only gzip is accepted; nothing when the coding is refused with q=0."""
        gz = http.get(CSV_PATH, headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip"
        plain = http.get(CSV_PATH, headers={"Accept-Encoding": "br;q=0, identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == gz.content

    def test_zips_are_not_encoded_again(self, http):
        """A ZIP is already compressed, so it is sent as it is even when br is accepted."""
        response = http.get(ZIP_PATH, headers={"Accept-Encoding": "br"})
        assert "content-encoding" not in response.headers
        assert response.content.startswith(b"PK\x03\x04")

    def test_head(self, http, nse_root):
        """HEAD answers with the headers alone."""
        response = http.head(ZIP_PATH)
        size = (nse_root / ZIP_PATH.lstrip("/")).stat().st_size
        assert response.status_code == 200 and response.content == b""
        assert response.headers["content-length"] == str(size)


class TestApi:
    def test_401_without_warm_up(self, http):
        """The API refuses a client without session cookies, with an HTML page."""
        response = holidays(http)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("text/html")

    @pytest.mark.parametrize("page", ["/", "/option-chain"])
    def test_200_after_warm_up(self, http, page):
        """A visit to the home page or the option-chain page sets nsit and nseappid."""
        assert warm_up(http, page).status_code == 200
        assert {"nsit", "nseappid"} <= set(http.cookies)
        response = holidays(http)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == HOLIDAYS_JSON

    def test_query_maps_to_a_file_then_falls_back(self, http, nse_root):
        """Sorted `k=v&k=v` names the file; without a match the endpoint's own file answers."""
        assert api_file(nse_root, "holiday-master", {"type": "trading"}) == (
            nse_root / "api/holiday-master/type=trading.json"
        )
        path = api_file(nse_root, "historicalOR/x", {"to": "31-12-2024", "from": "01-01-2024"})
        assert path.relative_to(nse_root).as_posix() == (
            "api/historicalOR/x/from=01-01-2024&to=31-12-2024.json"
        )
        assert api_file(nse_root, "x", {"index": "NIFTY 50"}).name == "index=NIFTY%2050.json"
        warm_up(http)
        assert http.get(HOLIDAYS_API, params={"type": "clearing"}).json() == {"any": []}
        missing = http.get("/api/option-chain-v3", params={"symbol": "NIFTY"})
        assert missing.status_code == 404


class TestFaults:
    def test_status(self, standin, http):
        """A status fault answers that status, with an HTML page or the body given."""
        standin.add_fault("status", ZIP_PATH, status=503)
        standin.add_fault("status", CSV_PATH, status=429, body='{"error": "slow down"}')
        first = http.get(ZIP_PATH)
        assert first.status_code == 503 and first.headers["content-type"] == "text/html"
        second = http.get(CSV_PATH)
        assert second.status_code == 429 and second.json() == {"error": "slow down"}
        assert http.get(ZIP_PATH).status_code == 200

    def test_applies_to_the_next_n_matching_requests(self, standin, http):
        """`times=2` spoils two matching requests; others pass untouched."""
        standin.add_fault("status", "/content/*", times=2, status=502)
        assert http.get(CSV_PATH).status_code == 200
        assert [http.get(ZIP_PATH).status_code for _ in range(3)] == [502, 502, 200]
        assert standin.faults == []

    def test_always_until_cleared(self, standin, http):
        """`times=None` spoils every matching request until the faults are cleared."""
        standin.add_fault("status", "*.zip", times=None, status=500)
        assert [http.get(ZIP_PATH).status_code for _ in range(3)] == [500, 500, 500]
        standin.clear_faults()
        assert http.get(ZIP_PATH).status_code == 200

    def test_throttle_empty_json(self, standin, http):
        """NSE's throttling: 200 with `{}`."""
        standin.add_fault("throttle_empty_json", "/api/*")
        warm_up(http)
        response = holidays(http)
        assert (response.status_code, response.content) == (200, b"{}")

    def test_empty_body(self, standin, http):
        """200 with an empty body, typed as the file would be."""
        standin.add_fault("empty_body", CSV_PATH)
        response = http.get(CSV_PATH)
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-type"] == "text/csv"

    def test_html_200(self, standin, http):
        """A soft 404: status 200 with an HTML page where a ZIP was expected."""
        standin.add_fault("html_200", ZIP_PATH)
        response = http.get(ZIP_PATH)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert b"<html>" in response.content

    def test_html_404(self, standin, http):
        """A 404 page even though the file exists."""
        standin.add_fault("html_404", ZIP_PATH)
        assert http.get(ZIP_PATH).status_code == 404

    def test_slow(self, standin, http):
        """The answer waits; a client with a shorter timeout gives up."""
        standin.add_fault("slow", CSV_PATH, times=2, seconds=0.4)
        started = time.monotonic()
        assert http.get(CSV_PATH).status_code == 200
        assert time.monotonic() - started >= 0.4
        with pytest.raises(httpx.ReadTimeout):
            http.get(CSV_PATH, timeout=0.1)

    def test_truncated(self, standin, http):
        """Content-Length promises the whole body, half arrives, the connection closes."""
        standin.add_fault("truncated", ZIP_PATH)
        with pytest.raises(httpx.RemoteProtocolError):
            http.get(ZIP_PATH)
        (entry,) = standin.request_log
        assert entry["fault"] == "truncated" and 0 < entry["bytes"]
        assert http.get(ZIP_PATH).status_code == 200

    def test_refuse_cookies(self, standin, http):
        """The warm-up answers 403 and sets nothing, so the API still refuses."""
        standin.add_fault("refuse_cookies")
        assert warm_up(http).status_code == 403
        assert not http.cookies
        assert holidays(http).status_code == 401

    def test_warmup_403_with_cookies(self, standin, http):
        """The warm-up answers 403 yet sets cookies that work, as NSE does."""
        standin.add_fault("warmup_403_with_cookies")
        assert warm_up(http).status_code == 403
        assert {"nsit", "nseappid"} <= set(http.cookies)
        assert holidays(http).status_code == 200

    def test_expire_session(self, standin, http):
        """The session ends: 401 despite cookies, until the client warms up again."""
        warm_up(http)
        standin.add_fault("expire_session")
        assert holidays(http).status_code == 401
        assert holidays(http).status_code == 401
        warm_up(http)
        assert holidays(http).status_code == 200

    def test_cookie_faults_wait_for_their_request(self, standin, http):
        """A warm-up fault is not used up by archive requests; an API fault not by warm-ups."""
        standin.add_fault("refuse_cookies")
        standin.add_fault("expire_session")
        assert http.get(ZIP_PATH).status_code == 200
        assert len(standin.faults) == 2
        assert warm_up(http).status_code == 403
        assert [f.kind for f in standin.faults] == ["expire_session"]

    def test_bad_faults_are_refused(self, standin):
        """Unknown kinds and non-positive counts are errors."""
        with pytest.raises(ValueError, match="unknown fault"):
            standin.add_fault("flaky")
        with pytest.raises(ValueError, match="times"):
            Fault("status", times=0)


class TestControl:
    def test_faults_over_http(self, standin, http):
        """Another process can POST faults, list them and DELETE them."""
        posted = http.post("/_standin/faults", json={"kind": "status", "status": 500, "times": 1})
        assert posted.status_code == 201
        assert posted.json()[0]["kind"] == "status"
        assert http.get(ZIP_PATH).status_code == 500
        http.post("/_standin/faults", json=[{"kind": "html_404"}, {"kind": "empty_body"}])
        assert [f["kind"] for f in http.get("/_standin/faults").json()] == [
            "html_404",
            "empty_body",
        ]
        assert http.delete("/_standin/faults").status_code == 204
        assert standin.faults == []

    def test_bad_fault_is_a_400(self, standin, http):
        """A fault the server cannot build is refused whole, with the reason."""
        response = http.post("/_standin/faults", json=[{"kind": "status"}, {"kind": "nope"}])
        assert response.status_code == 400
        assert "unknown fault" in response.json()["error"]
        assert standin.faults == []

    def test_log_over_http(self, standin, http):
        """GET returns the request log, DELETE empties it; control calls are not logged."""
        http.get(ZIP_PATH)
        log = http.get("/_standin/log").json()
        assert [(e["method"], e["path"], e["status"]) for e in log] == [("GET", ZIP_PATH, 200)]
        assert http.delete("/_standin/log").status_code == 204
        assert standin.request_log == []


class TestRequestLog:
    def test_records_what_tests_assert_on(self, standin, http):
        """Method, path, query, status, fault, cookie names and request headers, in order."""
        standin.add_fault("status", HOLIDAYS_API, status=503)
        warm_up(http)
        holidays(http)
        holidays(http)
        log = standin.request_log
        assert [(e["path"], e["status"], e["fault"]) for e in log] == [
            ("/", 200, None),
            (HOLIDAYS_API, 503, "status"),
            (HOLIDAYS_API, 200, None),
        ]
        assert log[1]["query"] == "type=trading"
        assert log[0]["cookies"] == [] and log[2]["cookies"] == ["nseappid", "nsit"]
        assert log[2]["headers"]["accept-encoding"] == "identity"
        assert log[0]["time"] <= log[1]["time"] <= log[2]["time"]
        assert sum(e["path"] == "/" for e in log) == 1


class TestCommand:
    def test_serves_until_terminated(self, nse_root):
        """`python -m include.nse_standin serve` prints its URL, serves, and stops on SIGTERM."""
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        args = [sys.executable, "-m", "include.nse_standin", "serve", "--root", str(nse_root)]
        process = subprocess.Popen(
            [*args, "--port", "0"], stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT
        )
        try:
            url = json.loads(process.stdout.readline())["url"]
            assert url.startswith("http://127.0.0.1:")
            assert httpx.get(url + ZIP_PATH).status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
