"""A stand-in for NSE: realistic NSE files for any range of days, and a local server for them.

Tests, benchmarks and the demo run against it instead of NSE. It lives beside the library
(`include.nse`), not inside it, because it is the other side of the wire: it writes NSE's formats
from its own description of them, so the library's parsers are checked against an independent
account of NSE's files rather than against themselves. It therefore imports none of the
library's fetching, parsing, lake or warehouse code.

The one thing it takes from the library is the trading calendar (`include.nse.calendar`), as
data: the holiday lists NSE published, which the generated holiday master serves back. Copying
them here would give two lists of NSE's holidays to keep in step.

Modules, each importing only modules named before it:

- `market`: the simulated market (listed securities, trading days, one `Session` per day) and
  what every file shares (IST, month names, publishing a file as NSE dates it);
- `server`: the HTTP stand-in for NSE's archive and API hosts, its faults, `api_file`;
- `equities`, `fo`, `deals`, `holidays`, `indices`, `option_chain`: one NSE format family each;
- `generate`: a range of days written by every dataset's writer;
- `cli`: `python -m include.nse_standin generate ...` and `... serve ...`.
"""
