"""The NSE client against the local stand-in over loopback, through each of NSE's bad habits."""

from __future__ import annotations

import gzip
import io
import json
import time
import zipfile

import brotli
import pytest

from include.nse.client import NSEClient
from include.nse.config import Settings
from include.nse.errors import FetchError, NotPublished
from include.nse_standin.server import StandIn, api_file
from tests.helpers import standin_settings
from tests.reliability.hostile import MIB, Hostile, Reply, gzip_zeros

ZIP_PATH = "/content/cm/BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv.zip"
CSV_PATH = "/products/content/sec_bhavdata_full_08072024.csv"
CSV_BODY = b"SYMBOL, SERIES, DATE1\nABC, EQ, 08-Jul-2024\n" * 200
HOLIDAYS = {"CM": [{"tradingDate": "17-Jul-2024", "description": "Muharram"}]}


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv", "TradDt,TckrSymb\n2024-07-08,ABC\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    for path, body in ((ZIP_PATH, _zip_bytes()), (CSV_PATH, CSV_BODY)):
        (root / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (root / path.lstrip("/")).write_bytes(body)
    target = api_file(root, "holiday-master", {"type": "trading"})
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(HOLIDAYS))
    return root


@pytest.fixture()
def standin(root):
    with StandIn(root) as server:
        yield server


@pytest.fixture()
def client(standin):
    settings = standin_settings(standin.url, timeout_seconds=0.5, max_attempts=3)
    with NSEClient(settings) as c:
        yield c


def _paths(standin) -> list[str]:
    return [entry["path"] for entry in standin.request_log]


class TestArchive:
    def test_zip_byte_exact_with_record(self, client, root):
        """A ZIP arrives byte for byte, with status, headers, size and sha256 recorded."""
        fetched = client.get_archive(ZIP_PATH)
        assert fetched.content == (root / ZIP_PATH.lstrip("/")).read_bytes()
        assert fetched.file_name == "BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv.zip"
        record = fetched.record()
        assert record["status"] == 200 and record["size"] == len(fetched.content)
        assert record["headers"]["content-type"] == "application/zip"
        assert "last-modified" in record["headers"]
        assert len(record["sha256"]) == 64 and record["attempts"] == 1
        assert client.history[-1]["url"].endswith(ZIP_PATH)

    def test_brotli_is_decoded(self, client, standin):
        """The client asks for brotli like a browser and keeps the decoded bytes."""
        fetched = client.get_archive(CSV_PATH)
        assert fetched.headers["content-encoding"] == "br"
        assert fetched.content == CSV_BODY
        assert "br" in standin.request_log[-1]["headers"]["accept-encoding"]

    def test_404_is_not_published_and_not_retried(self, client, standin):
        """A missing file is NotPublished after exactly one request."""
        with pytest.raises(NotPublished, match="HTTP 404"):
            client.get_archive("/content/cm/BhavCopy_NSE_CM_0_0_0_20240706_F_0000.csv.zip")
        assert len(standin.request_log) == 1

    def test_html_with_200_is_not_published(self, client, standin):
        """A soft 404 (HTML with status 200) is not mistaken for a CSV, nor retried."""
        standin.add_fault("html_200", CSV_PATH)
        with pytest.raises(NotPublished, match="HTML"):
            client.get_archive(CSV_PATH)
        assert len(standin.request_log) == 1

    def test_html_instead_of_zip_is_not_published(self, client, standin):
        """An HTML 404 page where a ZIP exists is still 'not published'."""
        standin.add_fault("html_404", ZIP_PATH)
        with pytest.raises(NotPublished):
            client.get_archive(ZIP_PATH, expect=("zip",))

    @pytest.mark.parametrize("status", [500, 502, 503, 429])
    def test_transient_status_is_retried(self, client, standin, status):
        """5xx and 429 are retried with backoff until the file comes."""
        standin.add_fault("status", ZIP_PATH, times=2, status=status)
        fetched = client.get_archive(ZIP_PATH)
        assert fetched.attempts == 3
        assert [e["status"] for e in standin.request_log] == [status, status, 200]

    def test_persistent_failure_gives_up(self, client, standin):
        """A host that keeps failing raises FetchError after max_attempts requests."""
        standin.add_fault("status", ZIP_PATH, times=None, status=503)
        with pytest.raises(FetchError, match="gave up after 3 attempts"):
            client.get_archive(ZIP_PATH)
        assert len(standin.request_log) == 3

    def test_empty_body_is_retried(self, client, standin):
        """An empty 200 is throttling, not an empty file."""
        standin.add_fault("empty_body", CSV_PATH)
        assert client.get_archive(CSV_PATH).content == CSV_BODY
        assert [e["fault"] for e in standin.request_log] == ["empty_body", None]

    def test_truncated_body_is_retried(self, client, standin, root):
        """A connection closed mid-body is retried and the whole file kept."""
        standin.add_fault("truncated", ZIP_PATH)
        fetched = client.get_archive(ZIP_PATH)
        assert fetched.content == (root / ZIP_PATH.lstrip("/")).read_bytes()
        assert fetched.attempts == 2

    def test_slow_answer_times_out_and_is_retried(self, client, standin):
        """A body slower than the timeout counts as a transient failure."""
        standin.add_fault("slow", CSV_PATH, seconds=1.5)
        assert client.get_archive(CSV_PATH).attempts == 2

    def test_rate_limit_spaces_requests(self, standin):
        """Requests to one host are spaced to the configured rate."""
        settings = Settings(archive_base_url=standin.url, archive_rate_per_second=5)
        with NSEClient(settings) as limited:
            for _ in range(6):
                limited.get_archive(CSV_PATH)
        times = [e["time"] for e in standin.request_log]
        assert times[-1] - times[0] >= 0.9


class TestApi:
    def test_warms_up_once_for_many_calls(self, client, standin):
        """The session cookies from one warm-up serve every later API call."""
        for _ in range(3):
            assert client.api_json("/api/holiday-master", {"type": "trading"}) == HOLIDAYS
        assert _paths(standin) == ["/"] + ["/api/holiday-master"] * 3
        assert standin.request_log[-1]["headers"]["x-requested-with"] == "XMLHttpRequest"

    def test_warmup_403_with_cookies_is_usable(self, client, standin):
        """NSE answers the warm-up with 403 yet sets working cookies; that is a session."""
        standin.add_fault("warmup_403_with_cookies", "/")
        assert client.api_json("/api/holiday-master", {"type": "trading"}) == HOLIDAYS
        assert [e["status"] for e in standin.request_log] == [403, 200]

    def test_refused_cookies_fall_back_to_the_option_chain_page(self, client, standin):
        """If the home page sets no cookies, the option-chain page is tried."""
        standin.add_fault("refuse_cookies", "/", times=None)
        assert client.api_json("/api/holiday-master", {"type": "trading"}) == HOLIDAYS
        assert _paths(standin) == ["/", "/option-chain", "/api/holiday-master"]

    def test_no_session_at_all_gives_up(self, client, standin):
        """When no warm-up sets cookies, the client stops after its attempts."""
        standin.add_fault("refuse_cookies", "*", times=None)
        with pytest.raises(FetchError, match="session not established"):
            client.api_json("/api/holiday-master", {"type": "trading"})
        assert "/api/holiday-master" not in _paths(standin)

    def test_expired_session_is_renewed(self, client, standin):
        """A 401 means the session is gone: warm up again and retry."""
        client.api_json("/api/holiday-master", {"type": "trading"})
        standin.add_fault("expire_session", "/api/*")
        assert client.api_json("/api/holiday-master", {"type": "trading"}) == HOLIDAYS
        assert _paths(standin) == [
            "/",
            "/api/holiday-master",
            "/api/holiday-master",
            "/",
            "/api/holiday-master",
        ]

    def test_throttle_empty_json_is_retried(self, client, standin):
        """`{}` with status 200 is NSE throttling; the next attempt gets the data."""
        standin.add_fault("throttle_empty_json", "/api/*")
        assert client.api_json("/api/holiday-master", {"type": "trading"}) == HOLIDAYS
        assert [e["fault"] for e in standin.request_log if e["path"] != "/"] == [
            "throttle_empty_json",
            None,
        ]

    def test_unknown_endpoint_is_not_published(self, client):
        """An API path with no data is NotPublished, not a retry loop."""
        with pytest.raises(NotPublished):
            client.api_json("/api/no-such-thing")


# ---- bounds, deadline and redirects, against a scripted server ---------------------------------
class TestBounds:
    """Every download is bounded: its body as declared, as received and as decoded, its time
    as a whole, and where its redirects may lead."""

    CSV = "/products/content/day.csv"

    @pytest.fixture()
    def nse(self):
        with Hostile() as server:
            yield server

    def _client(self, nse, **changes) -> NSEClient:
        settings = standin_settings(nse.url, max_attempts=2, max_body_bytes=MIB, **changes)
        return NSEClient(settings)

    def _refused(self, nse, reply: Reply | None = None, **changes) -> str:
        """The FetchError's message for a GET of CSV (answered `reply` when given)."""
        if reply is not None:
            nse.script(self.CSV, reply)
        with self._client(nse, **changes) as client, pytest.raises(FetchError) as caught:
            client.get_archive(self.CSV)
        return str(caught.value)

    def test_declared_length_over_the_bound_is_not_read(self, nse):
        """A Content-Length over the bound is refused before the body, and not retried."""
        message = self._refused(nse, Reply(200, lambda: iter([b"x"]), length=1 << 31))
        assert message == (
            f"{nse.url}{self.CSV}: declares a body of 2 GiB (2147483648 bytes, Content-Length), "
            "over the 1 MiB allowed; not read"
        )
        assert len(nse.requests(self.CSV)) == 1

    def test_body_without_length_stops_at_the_bound(self, nse):
        """A chunked body is counted as it comes and refused once past the bound: of a 1 GiB
        body the server gets little further than loopback's socket buffers hold (a few MiB)."""
        message = self._refused(
            nse, Reply(200, lambda: (bytes(65536) for _ in range(16384)), length=None)
        )
        assert message.startswith(f"{nse.url}{self.CSV}: body over the 1 MiB allowed; stopped")
        assert nse.requests(self.CSV)[0]["sent"] < 64 * MIB

    @pytest.mark.parametrize("coding", ["gzip", "br"])
    def test_encoded_body_is_bounded_as_decoded(self, nse, coding):
        """A small gzip or brotli body decoding past the bound is refused as it decodes."""
        body = gzip_zeros(16 * MIB) if coding == "gzip" else brotli.compress(bytes(16 * MIB))
        message = self._refused(nse, Reply(200, body, {"Content-Encoding": coding}))
        assert f"body over the 1 MiB allowed once {coding} decoded" in message

    def test_encoded_body_within_the_bound_is_kept_decoded(self, nse):
        """gzip only wraps the file for the wire: the client returns the file itself."""
        nse.script(self.CSV, Reply(200, gzip.compress(CSV_BODY), {"Content-Encoding": "gzip"}))
        with self._client(nse) as client:
            assert client.get_archive(self.CSV).content == CSV_BODY

    def test_dataset_bound_from_the_environment(self, nse):
        """NSE_MAX_BODY_MB_<DATASET> bounds one dataset; the others keep theirs."""
        settings = Settings.from_env({"NSE_MAX_BODY_MB_CM_DELIVERY": "0.5"})
        assert settings.body_limit("cm_delivery") == MIB // 2
        assert settings.body_limit("fo_bhavcopy") == Settings().body_limit("fo_bhavcopy")
        with pytest.raises(ValueError, match="NSE_HTTP_DEADLINE='soon' is not a valid"):
            Settings.from_env({"NSE_HTTP_DEADLINE": "soon"})
        nse.script(self.CSV, Reply(200, bytes(600 * 1024), {"Content-Type": "text/csv"}))
        with self._client(nse, body_bytes=settings.body_bytes) as client:
            with pytest.raises(FetchError, match="over the 512 KiB allowed for cm_delivery"):
                client.for_dataset("cm_delivery").get_archive(self.CSV)
            assert len(client.get_archive(self.CSV).content) == 600 * 1024

    def test_trickling_body_stops_at_the_deadline(self, nse):
        """A byte every 0.2 s never trips a 2 s read timeout; the download's 1 s deadline does."""
        started = time.monotonic()
        message = self._refused(
            nse,
            Reply(200, CSV_BODY, trickle=0.2),
            timeout_seconds=2,
            download_deadline_seconds=1,
        )
        assert "not received in full within the 1 s allowed for a download" in message
        assert time.monotonic() - started < 6

    def test_redirect_on_the_same_host_is_followed(self, nse):
        nse.script(self.CSV, Reply(302, headers={"Location": "/products/content/moved.csv"}))
        nse.script("/products/content/moved.csv", Reply(200, CSV_BODY))
        with self._client(nse) as client:
            fetched = client.get_archive(self.CSV)
        assert fetched.content == CSV_BODY and fetched.file_name == "moved.csv"
        assert fetched.redirects == (f"{nse.url}{self.CSV}",)

    def test_redirect_to_another_host_is_refused_unless_allowed(self, nse):
        """Only NSE's hosts (and configured ones) are followed to; nothing is asked of others."""
        target = f"{nse.other_url}/products/content/moved.csv"
        nse.script(self.CSV, Reply(302, headers={"Location": target}))
        nse.script("/products/content/moved.csv", Reply(200, CSV_BODY))
        message = self._refused(nse)
        assert message.startswith(f"{nse.url}{self.CSV}: redirected to {target}, which is not")
        assert len(nse.log) == 1
        allowed = (f"localhost:{nse.port}",)
        with self._client(nse, redirect_hosts=allowed) as client:
            assert client.get_archive(self.CSV).content == CSV_BODY

    def test_redirect_loop_and_too_many_redirects(self, nse):
        nse.script(self.CSV, Reply(302, headers={"Location": "/b.csv"}))
        nse.script("/b.csv", Reply(302, headers={"Location": self.CSV}))
        message = self._refused(nse)
        assert message == (
            f"{nse.url}{self.CSV}: redirect loop: {nse.url}{self.CSV} -> {nse.url}/b.csv -> "
            f"{nse.url}{self.CSV}"
        )
        for i in range(4):
            nse.script(f"/{i}.csv", Reply(302, headers={"Location": f"/{i + 1}.csv"}))
        with self._client(nse, max_redirects=2) as client, pytest.raises(FetchError) as caught:
            client.get_archive("/0.csv")
        assert "more than 2 redirects (NSE_HTTP_MAX_REDIRECTS)" in str(caught.value)

    def test_answer_without_a_file_name_is_refused(self, nse):
        """A redirect to a folder's URL gives nothing the lake could be given a name for."""
        nse.script(self.CSV, Reply(302, headers={"Location": "/products/content/"}))
        nse.script("/products/content/", Reply(200, CSV_BODY))
        message = self._refused(nse)
        assert message.startswith(
            f"{nse.url}/products/content/ (redirected from {nse.url}{self.CSV}): the answer's "
            "URL names no usable file"
        )
