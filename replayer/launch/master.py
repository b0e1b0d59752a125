"""``rewind-launch-master``: the command of the master Pod that ``rewind-launch`` creates.

Runs ``rewind-replay`` with the arguments after ``--`` (its log goes to this process's output,
so it is the Pod's log), then prints the report folder to the log as one bundle
(``replayer.launch.bundle``) and exits with rewind-replay's exit code: the Pod's exit code is
the replay's verdict, and the bundle is how the report reaches the launcher without a shared
volume. SIGTERM and SIGINT are passed on to rewind-replay.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

from replayer.launch.bundle import lines, pack
from replayer.replay.parser import EXIT_HELP
from sidecar.common import cli_args as a
from sidecar.contract.exit_codes import LaunchExit

EPILOG = """\
example (what rewind-launch puts in the master Job):
  rewind-launch-master --run-id nightly-42 --report-dir /reports/nightly-42 -- \\
      --source redis://redis:6379/0 --stream orders --target http://candidate:8080 \\
      --external-workers 4 --report /reports/nightly-42

""" + a.exit_codes_help(EXIT_HELP, title="exit codes (rewind-replay's)") + """\
and 128+N when rewind-replay was killed by signal N; 2 also for bad arguments of this command
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rewind-launch-master",
        description="Run rewind-replay, then print its report folder to the log as a "
        "tar+zstd+base64 bundle between marker lines (read back by rewind-launch).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add(p, "--run-id", required=True, help="the run id written on the bundle's marker lines")
    a.add(p, "--report-dir", required=True,
          help="the folder rewind-replay writes (its --report); bundled when it ends")
    p.add_argument("replay_args", nargs=argparse.REMAINDER,
                   help="-- then the rewind-replay arguments")
    return p


def main(argv: list[str] | None = None, *, out=None) -> int:
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    replay = args.replay_args[1:] if args.replay_args[:1] == ["--"] else args.replay_args
    if not replay:
        print("rewind-launch-master: give the rewind-replay arguments after --", file=sys.stderr)
        return LaunchExit.USAGE
    child = subprocess.Popen([sys.executable, "-m", "replayer.replay.cli", *replay])

    def forward(signum, _frame) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    code = child.wait()
    if code < 0:
        code = 128 - code
    data = pack(args.report_dir)
    sys.stderr.flush()
    out.write("\n".join(lines(args.run_id, code, data)) + "\n")
    out.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
