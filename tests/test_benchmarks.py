"""benchmarks/run.py keeps working, and its request counts are the documented ones.

Only counts are asserted (exact, from botocore's events): times are the benchmark's
to report, never a test's to check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a full run regenerates; a quick run must leave them alone.
TRACKED = (ROOT / "docs" / "benchmarks.md", ROOT / "docs" / "img" / "benchmarks.png")


def snapshot() -> list[tuple[int, bytes]]:
    return [(path.stat().st_mtime_ns, path.read_bytes()) for path in TRACKED]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """One quick run, as the README gives it (no --out): the report goes to a new
    temporary directory, which the run names, and the tracked page is untouched."""
    figures = tmp_path_factory.mktemp("bench") / "results.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    before = snapshot()
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "run.py"),
            "--quick",
            "--no-aws",
            "--json",
            str(figures),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    [line] = [x for x in run.stdout.splitlines() if x.startswith("report directory: ")]
    out = Path(line.removeprefix("report directory: "))
    try:
        assert snapshot() == before, "benchmarks/run.py --quick rewrote a tracked file"
        assert out.parent == Path(tempfile.gettempdir()) and out.name.startswith("confio-bench-")
        [local] = json.loads(figures.read_text())
        yield local, out
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_report_directory_is_chosen_by_mode_and_out() -> None:
    """Full run: docs/ (the tracked page); --quick: a new temporary directory; --out
    wins for either. run.py configures Django on import, hence its own process."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from benchmarks.run import report_dir; "
        "print(json.dumps([str(report_dir(None, quick=False)), str(report_dir(None, quick=True)), "
        "str(report_dir(Path('x'), quick=True)), str(report_dir(Path('y'), quick=False))]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    full, quick, quick_out, full_out = json.loads(run.stdout.splitlines()[-1])
    try:
        assert Path(full) == ROOT / "docs"
        assert Path(quick).parent == Path(tempfile.gettempdir()) and Path(quick).is_dir()
        assert not any(Path(quick).iterdir())  # new and empty
        assert (quick_out, full_out) == ("x", "y")
    finally:
        shutil.rmtree(quick, ignore_errors=True)


def requests(local: dict[str, Any], approach: str, group: int) -> float:
    [row] = [r for r in local["rows"] if (r["approach"], r["group"]) == (approach, group)]
    return float(row["requests_per_call"])


@pytest.mark.parametrize("group", [1, 4, 16])
def test_requests_per_call(results: tuple[dict[str, Any], Path], group: int) -> None:
    local, _ = results
    assert requests(local, "floor", group) == 0
    assert requests(local, "envelope", group) == 1
    assert requests(local, "baseline", group) == group
    assert requests(local, "native", group) == group


def test_cold_starts_and_signatures(results: tuple[dict[str, Any], Path]) -> None:
    local, _ = results
    cold = {kind: tuple(c["operations"]) for kind, c in local["cold"].items()}
    assert cold == {
        "baseline": ("DescribeKey", "ListResourceTags", "GetParameter"),
        # the ciphertext once, then one kms:Decrypt per call
        "envelope": ("DescribeKey", "ListResourceTags", "GetParameter", "Decrypt"),
        "native": ("DescribeKey", "ListResourceTags", "GetPublicKey", "Sign"),
    }
    assert local["identical_signatures"] is True


@pytest.mark.parametrize("server", ["redis", "memcached"])
def test_a_second_process_sharing_the_cache_makes_no_request(
    results: tuple[dict[str, Any], Path], server: str
) -> None:
    local, _ = results
    binary = {"redis": "redis-server", "memcached": "memcached"}[server]
    if shutil.which(binary) is None:  # the test extra installs the Python clients
        assert local["shared_cache"][server] is None
        pytest.skip(f"{binary} is not installed (apt-get install {binary})")
    assert local["shared_cache"][server] == [2, 0]


def test_the_report_and_chart_are_written(results: tuple[dict[str, Any], Path]) -> None:
    _, out = results
    page = (out / "benchmarks.md").read_text()
    assert "| envelope | 16 | 1 |" in page and "| baseline | 16 | 16 |" in page
    assert (out / "img" / "benchmarks.png").read_bytes().startswith(b"\x89PNG")


def test_local_cpu_is_measured_for_every_group_and_reported(
    results: tuple[dict[str, Any], Path],
) -> None:
    local, out = results
    assert sorted(local["local_cpu"], key=int) == ["1", "4", "16"]
    for figures in local["local_cpu"].values():
        assert all(value > 0 for value in figures.values()), figures
    page = (out / "benchmarks.md").read_text()
    assert "| group | floor µs | replayed µs (before + after) | ratio" in page
    assert "At group 1 the live calls took" in page


def test_native_groups_with_a_simulated_round_trip_report_both_sides_cpu(
    results: tuple[dict[str, Any], Path],
) -> None:
    local, out = results
    for figures in ("delayed_native", "delayed_native_cpu", "delayed_endpoint_cpu"):
        assert sorted(local[figures], key=int) == ["1", "16"], figures
    assert local["delayed_native"]["16"] >= 20  # at least the simulated round trip
    assert local["delayed_native_cpu"]["16"] > local["delayed_native_cpu"]["1"] > 0
    assert "| the endpoint's CPU ms, mean |" in (out / "benchmarks.md").read_text()


def test_soak_run_reports_every_phase_and_verifies_every_signature(tmp_path: Path) -> None:
    """A short soak (one process, one single and one group thread, one fault, the
    rotation): the report has its sections, the fault was injected and counted, every
    signature verified and the ledger sample judged as expected. Its times are the
    benchmark's to report: no rotation target is asserted here."""
    figures, page = tmp_path / "soak.json", tmp_path / "soak.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            *("--processes", "1", "--threads", "2", "--seconds", "6"),
            *("--faults", "error", "--fault-seconds", "0.5"),
            *("--ledger-sample", "4", "--ledger-refusals", "1"),
            *("--out", str(page), "--json", str(figures)),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    result = json.loads(figures.read_text())
    names = [row["phase"] for row in result["phases"]]
    assert names == ["steady", "error: on", "error: after", "rotation", "steady"]
    [fault] = result["recovery"]
    assert fault["fault"] == "error" and fault["note"] == "" and fault["requests_faulted"] > 0
    assert result["whole"]["signatures"] > 0 and result["verify_failures"] == 0
    assert set(result["signers"]) <= {"old", "new"} and result["signers"]["old"] > 0
    assert result["rotation"]["state"] == "completed"
    [process] = result["rotation"]["processes"]
    assert set(process) >= {"first_new", "old_after", "last_old", "failed_after_window"}
    before = result["rotation"]["ledger_before"]
    assert before["calls"] > 0 and before["accepted"] == before["calls"]
    after = result["ledger_after"]
    new, late = after["new_key"], after["old_key_late"]
    assert new["accepted"] == new["calls"] and late["refused"] == late["evaluated"]
    [resources] = result["resources"]
    assert resources["samples"] > 0 and resources["threads"][1] >= 3  # main + 2 signing
    verdicts = {target: verdict for target, _, verdict in result["targets"]}
    assert verdicts[next(t for t in verdicts if t.startswith("every signature"))] == "met"
    text = page.read_text()
    for heading in ("| phase |", "| fault |", "| process | first new-key", "| process | samples"):
        assert heading in text
