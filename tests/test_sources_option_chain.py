"""The option chain parser on generated responses of both shapes, and on broken ones."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import polars as pl
import pytest

from include.nse import quality
from include.nse.dates import IST, nse_date_text
from include.nse.errors import ParseError
from include.nse.sources import option_chain
from include.nse_standin.option_chain import write_option_chains
from include.nse_standin.server import api_file
from tests.conftest import PROJECT_ROOT
from tests.helpers import failed

SNAPSHOT = dt.datetime(2024, 7, 5, 11, 40, 7, tzinfo=IST)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    write_option_chains(root, ["NIFTY", "RELIANCE"], SNAPSHOT, legacy=True)
    return root


def _v3_files(root, underlying):
    return sorted((root / "api" / "option-chain-v3").glob(f"*symbol={underlying}&*.json"))


def _legs(document: dict) -> list[tuple[str, float, str, dict]]:
    """(expiry, strike, side, leg) of every leg, read straight from the JSON."""
    return [
        (item.get("expiryDates") or item["expiryDate"], item["strikePrice"], side, item[side])
        for item in document["records"]["data"]
        for side in ("CE", "PE")
        if side in item
    ]


class TestV3:
    def test_every_leg_becomes_a_row(self, root):
        """Each leg of each expiry's response is one row, with its numbers and the snapshot."""
        for path in _v3_files(root, "NIFTY"):
            document = json.loads(path.read_bytes())
            df = option_chain.parse(path.read_bytes(), path.name)
            legs = _legs(document)
            assert df.height == len(legs)
            assert df["source_format"].unique().to_list() == ["v3"]
            assert df["snapshot_ts"].unique().to_list() == [SNAPSHOT]
            assert df["trade_date"].unique().to_list() == [SNAPSHOT.date()]
            assert df["open_interest"].sum() == sum(leg["openInterest"] for *_, leg in legs)
            assert df["bid_qty"].sum() == sum(leg["buyQuantity1"] for *_, leg in legs)

    def test_missing_legs_and_zero_prices(self, root):
        """Strikes without a leg give no row for it; NSE's 0 prices and IV become null."""
        path = _v3_files(root, "NIFTY")[0]
        document = json.loads(path.read_bytes())
        items = document["records"]["data"]
        one_sided = [i for i in items if ("CE" in i) != ("PE" in i)]
        assert one_sided, "the generator leaves some deep legs out"
        df = option_chain.parse(path.read_bytes(), path.name)
        assert df.height == 2 * len(items) - len(one_sided)
        zero_iv = sum(leg["impliedVolatility"] == 0 for *_, leg in _legs(document))
        assert df["implied_volatility"].null_count() == zero_iv

    def test_underlying_must_match(self, root):
        """A response for another underlying than the one asked for is refused."""
        path = _v3_files(root, "RELIANCE")[0]
        with pytest.raises(ParseError, match="expected NIFTY"):
            option_chain.parse(path.read_bytes(), path.name, underlying="NIFTY")


class TestLegacy:
    def test_all_expiries_from_records(self, root):
        """The older shape's records hold every expiry; the rows equal the v3 responses' rows."""
        path = api_file(root, "option-chain-indices", {"symbol": "NIFTY"})
        legacy = option_chain.parse(path.read_bytes(), path.name)
        v3 = [option_chain.parse(p.read_bytes(), p.name) for p in _v3_files(root, "NIFTY")]
        assert legacy["source_format"].unique().to_list() == ["legacy"]
        assert legacy.height == sum(f.height for f in v3)
        columns = ["expiry_date", "strike_price", "option_type", "open_interest", "bid_price"]
        merged = legacy.select(columns).sort(columns[:3])
        assert merged.equals(pl.concat([f.select(columns) for f in v3]).sort(columns[:3]))


class TestContractInfo:
    def test_expiries_in_order(self, root):
        """The expiry list comes back as dates, in NSE's order."""
        path = api_file(root, "option-chain-contract-info", {"symbol": "RELIANCE"})
        listed = json.loads(path.read_bytes())["expiryDates"]
        dates = option_chain.expiry_dates(path.read_bytes(), path.name)
        assert [nse_date_text(d) for d in dates] == listed
        assert dates == sorted(dates)

    def test_empty_list_is_refused(self):
        """No expiries is an error naming the field."""
        with pytest.raises(ParseError, match="expiryDates"):
            option_chain.expiry_dates(b'{"expiryDates": []}', "info.json")


class TestErrors:
    @pytest.mark.parametrize(
        ("document", "where"),
        [
            ({"records": {"data": []}}, "records.timestamp"),
            ({"records": {"timestamp": "5 Jul 2024", "data": []}}, "records.timestamp"),
            ({"filtered": {}}, "records"),
            (
                {
                    "records": {
                        "timestamp": "05-Jul-2024 10:00:00",
                        "data": [
                            {
                                "strikePrice": 100,
                                "expiryDates": "25-Jul-2024",
                                "CE": {"openInterest": "12", "underlying": "X"},
                            }
                        ],
                    }
                },
                "records.data[0].CE.openInterest",
            ),
            (
                {
                    "records": {
                        "timestamp": "05-Jul-2024 10:00:00",
                        "data": [{"strikePrice": "100", "expiryDates": "25-Jul-2024"}],
                    }
                },
                "records.data[0].strikePrice",
            ),
            (
                {
                    "records": {
                        "timestamp": "05-Jul-2024 10:00:00",
                        "data": [{"strikePrice": 100, "expiryDates": "2024-07-25"}],
                    }
                },
                "records.data[0].expiryDates",
            ),
        ],
    )
    def test_errors_name_the_field(self, document, where):
        """Broken responses raise a ParseError naming the file and the field."""
        with pytest.raises(ParseError, match=re.escape(f"chain.json, column '{where}'")):
            option_chain.parse(json.dumps(document).encode(), "chain.json")

    @pytest.mark.parametrize(
        ("field", "value", "expected"),
        [
            ("openInterest", '"1200"', "a number or null, found '1200'"),
            ("lastPrice", "true", "a number or null, found True"),
            ("lastPrice", "1e400", "a number or null, found inf"),
            ("lastPrice", "NaN", "JSON: NaN is not a number NSE sends"),
            ("change", "-Infinity", "JSON: -Infinity is not a number NSE sends"),
            ("totalTradedVolume", "12.5", "a whole number >= 0 or null, found 12.5"),
            ("totalTradedVolume", "-3", "a whole number >= 0 or null, found -3"),
            ("buyQuantity1", str(2**64), f"a whole number >= 0 or null, found {2**64}"),
        ],
    )
    def test_a_wrong_number_is_refused_naming_its_leg(self, root, field, value, expected):
        """Text, a bool, NaN, an infinity, or a fraction or negative count is refused with
        the leg's path; `value` is JSON text, as NSE would send it."""
        path = _v3_files(root, "RELIANCE")[0]
        document = json.loads(path.read_bytes())
        item = next(i for i, strike in enumerate(document["records"]["data"]) if "CE" in strike)
        document["records"]["data"][item]["CE"][field] = "@value@"
        raw = json.dumps(document).encode().replace(b'"@value@"', value.encode())
        with pytest.raises(ParseError) as caught:
            option_chain.parse(raw, path.name)
        assert caught.value.column == f"records.data[{item}].CE.{field}"
        assert str(caught.value).endswith(f"expected {expected}")

    def test_a_whole_float_count_is_its_number(self, root):
        """A count sent as a whole float (12.0) is that whole number."""
        path = _v3_files(root, "RELIANCE")[0]
        document = json.loads(path.read_bytes())
        item = next(i for i, strike in enumerate(document["records"]["data"]) if "CE" in strike)
        document["records"]["data"][item]["CE"]["totalTradedVolume"] = 12.0
        frame = option_chain.parse(json.dumps(document).encode(), path.name)
        strike = document["records"]["data"][item]["strikePrice"]
        leg = frame.filter((frame["strike_price"] == strike) & (frame["option_type"] == "CE"))
        assert leg["volume"].to_list() == [12]

    def test_duplicate_strike_is_refused(self, root):
        """The same strike twice in one expiry is an error, not two rows."""
        path = _v3_files(root, "RELIANCE")[0]
        document = json.loads(path.read_bytes())
        document["records"]["data"].append(document["records"]["data"][0])
        with pytest.raises(ParseError, match="more than once"):
            option_chain.parse(json.dumps(document).encode(), path.name)

    def test_html_is_refused(self):
        """An HTML page (NSE's 401 without a session) is not JSON."""
        with pytest.raises(ParseError, match=r"^chain\.json: expected JSON, found an HTML page"):
            option_chain.parse(b"<html>401</html>", "chain.json")


class TestNullFields:
    """A field NSE sends as null (or leaves out) is null in silver; the gate judges it."""

    def _chain(self, root, change) -> tuple:
        path = _v3_files(root, "NIFTY")[0]
        document = json.loads(path.read_bytes())
        change(document["records"]["data"][0]["CE"])
        frame = option_chain.parse(json.dumps(document).encode(), path.name)
        report, _ = quality.validate_frame(
            "option_chain",
            quality.suite(option_chain.DATASET),
            frame,
            SNAPSHOT.date(),
        )
        return frame, report

    def test_missing_open_interest_stops_the_gate(self, root):
        """A leg without open interest keeps its row, with a null the critical check stops."""
        frame, report = self._chain(root, lambda leg: leg.pop("openInterest"))
        assert frame["open_interest"].null_count() == 1
        assert not report.passed
        assert failed(report, "critical") == {
            ("expect_column_values_to_not_be_null", "open_interest")
        }

    def test_null_volume_is_a_warning(self, root):
        """A leg whose volume is JSON null keeps its row; the gate records a warning only."""
        frame, report = self._chain(root, lambda leg: leg.update(totalTradedVolume=None))
        assert frame["volume"].null_count() == 1
        assert report.passed
        assert failed(report, "warning") == {("expect_column_values_to_not_be_null", "volume")}


def test_command_line_parses_both_shapes(root, tmp_path):
    """`python -m include.nse parse option_chain FILE` handles v3 and the older shape."""
    for path in (
        _v3_files(root, "NIFTY")[0],
        api_file(root, "option-chain-indices", {"symbol": "NIFTY"}),
    ):
        out = tmp_path / f"{path.stem}.parquet"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "include.nse",
                "parse",
                "option_chain",
                str(path),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        )
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)["rows"]
        assert rows == len(_legs(json.loads(path.read_bytes())))
        assert out.exists()
