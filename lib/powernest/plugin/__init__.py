"""The powernest pytest plugin, one module per concern.

- `options`: command-line options and markers, registered in every pytest of
  the virtualenv (the package's `pytest11` entry point), so they parse
  wherever they stand on a command line; nothing else;
- `run`: a run of the suites: its id, inventory, directory, journal and report
  (`start_run`), and the controller's part under pytest-xdist;
- `collection`: cases parametrized by target or host, grouped per host,
  cases that replace a shared L1 last;
- `cases`: what each case records (L0, logs, hcalls) and whether it can run
  here (`requires` and `deviation` markers);
- `recording`: the journal, written as cases start and end, and junit.xml;
- `shared`: a target's shared L1 and L2: started at first use, replaced after a
  case that damaged them (one incident, one red case), stopped after their last;
- `fixtures`: hosts, guests and the per-case records, known deviations.

A conftest.py loads `collection`, `cases`, `shared` and `fixtures` (`pytest_plugins`):
they only add fixtures and hooks that act on a run's cases.  A run (inventory, run
directory, journal, `latest`, signal handlers) starts only when a directory of
suites calls `run.start_run` in its conftest.py.
"""

PLUGINS = ["powernest.plugin.collection", "powernest.plugin.cases", "powernest.plugin.shared",
           "powernest.plugin.fixtures"]
