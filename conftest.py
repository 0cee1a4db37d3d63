"""How pytest meets powernest in this tree.

The options (`--inventory`, `--hosts`, `--reports`, ...) and markers
(`premerge`, `requires`, `deviation`, ...) come with the installed package
(`powernest.plugin.options`, its pytest11 entry point).  The rest of the
powernest plugin (`lib/powernest/plugin/`) is loaded here, once, for every
pytest run in this tree: the fixtures the suites use (`target`, `host`,
`host_session`, `pool`, `l1`, `l2`, `expect_deviation`; see
`powernest/plugin/fixtures.py`) and the hooks that parametrize, group and
record their cases.  Loading it has no side effect: `suites/conftest.py`
starts a run (inventory, run directory, journal, report) when the suites are
collected.  powernest's own tests (`tests/`) start none.
"""

from powernest.plugin import PLUGINS

pytest_plugins = PLUGINS
