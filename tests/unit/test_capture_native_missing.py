"""rewind-capture where its native extension is not built: a clear error, no slow path."""

from __future__ import annotations

import json
import subprocess
import sys

from sidecar.contract.exit_codes import CaptureExit

# the extension made unimportable, as in an installation that could not compile it
RUN = ("import sys; sys.modules['sidecar.capture._native'] = None; "
       "from sidecar.capture.cli import main; sys.exit(main(sys.argv[1:]))")


def test_without_the_extension_capture_stops_with_how_to_build_it():
    """rewind-capture exits 4 before loading the probe or reaching Redis, with a log line that
    names the extension and says how to build it."""
    proc = subprocess.run([sys.executable, "-c", RUN, "--port", "8080", "--stream", "s",
                           "--redis", "redis://127.0.0.1:1/0", "--log-format", "json",
                           "--metrics-port", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == CaptureExit.NATIVE == 4, proc.stderr
    out = proc.stdout + proc.stderr  # the log goes to either, by configuration
    (line,) = [json.loads(x) for x in out.splitlines() if "native_missing" in x]
    assert line["level"] == "error"
    assert "sidecar.capture._native" in line["error"] and "pip install" in line["error"]
    assert "gcc" in line["error"] and "python3-dev" in line["error"]
