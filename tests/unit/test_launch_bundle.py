"""The report bundle that carries a replay report through the master Pod's log: it round-trips,
is found among other log lines, and a cut, damaged or other run's bundle is refused."""

from __future__ import annotations

import pytest

from replayer.launch.bundle import BundleError, find_bundle, lines, pack, unpack


def folder(tmp_path):
    d = tmp_path / "report"
    (d / "sub").mkdir(parents=True)
    (d / "summary.json").write_text('{"ok": true}')
    (d / "sub" / "plot.png").write_bytes(bytes(range(256)) * 100)
    return d


def test_round_trip_among_log_lines(tmp_path):
    """Packed, printed between other log lines, found and unpacked: the same files and bytes,
    and the exit code on the end line."""
    d = folder(tmp_path)
    log = "\n".join(["{\"event\": \"replay.done\"}", *lines("r-1", 1, pack(d)), "trailing"])
    bundle = find_bundle(log, "r-1")
    assert bundle.exit_code == 1
    assert unpack(bundle.data, tmp_path / "out") == ["sub/plot.png", "summary.json"]
    assert (tmp_path / "out" / "sub" / "plot.png").read_bytes() == (d / "sub" / "plot.png").read_bytes()


def test_cut_damaged_and_foreign_bundles_are_refused(tmp_path):
    """A log that ends inside the bundle, one changed character, or only another run's bundle:
    BundleError with a reason, never a wrong report."""
    text = lines("r-1", 0, pack(folder(tmp_path)))
    with pytest.raises(BundleError, match="cut"):
        find_bundle("\n".join(text[:-1]), "r-1")
    damaged = list(text)
    damaged[1] = ("A" if damaged[1][0] != "A" else "B") + damaged[1][1:]
    with pytest.raises(BundleError, match="damaged"):
        find_bundle("\n".join(damaged), "r-1")
    with pytest.raises(BundleError, match="no complete report bundle of run r-2"):
        find_bundle("\n".join(text), "r-2")


def test_missing_folder_packs_empty(tmp_path):
    """A replay that failed before writing its report still yields a bundle (with no files),
    so the exit code travels on the end line."""
    bundle = find_bundle("\n".join(lines("r", 4, pack(tmp_path / "none"))), "r")
    assert bundle.exit_code == 4 and unpack(bundle.data, tmp_path / "out") == []
