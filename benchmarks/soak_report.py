"""The figures and the markdown page of benchmarks/soak.py, from its workers' files.

Times are ``time.monotonic()`` seconds, one clock for every process on Linux. A call
belongs to the phase in which it started; a signature counts when its call ends.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from algosdk import encoding

from benchmarks.quota_report import _errors, _num, percentile

SETTINGS = (
    "processes",
    "threads",
    "group",
    "seconds",
    "faults",
    "fault_seconds",
    "cache",
    "coalesce",
    "window",
    "sample_every",
    "ledger_sample",
    "ledger_refusals",
)


def read_samples(logs: Path, workers: int) -> list[dict[str, Any]]:
    """Every sampled call the workers have written so far, with its worker."""
    samples = []
    for number in range(workers):
        path = logs / f"samples-{number}.jsonl"
        if path.exists():
            for line in path.read_text().splitlines():
                if line.endswith("}"):  # a line being written is left for later
                    samples.append({**json.loads(line), "worker": number})
    return samples


def _evaluate(ledger: Any, calls: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """(calls accepted, reasons of the refused): every call in one block, halves
    again whenever the ledger refuses a block, down to single calls."""
    if not calls:
        return 0, []
    signed = [encoding.msgpack_decode(s) for call in calls for s in call["signed"]]
    try:
        ledger.evaluate(signed)
        return len(calls), []
    except Exception as error:  # algojig raises bare exceptions for refusals
        if len(calls) == 1:
            return 0, [" ".join(str(error).split())[:160]]
    middle = len(calls) // 2
    first, second = _evaluate(ledger, calls[:middle]), _evaluate(ledger, calls[middle:])
    return first[0] + second[0], first[1] + second[1]


def ledger_check(ledger: Any, calls: list[dict[str, Any]]) -> dict[str, Any]:
    accepted, reasons = _evaluate(ledger, calls)
    return {
        "calls": len(calls),
        "transactions": sum(len(c["signed"]) for c in calls),
        "accepted": accepted,
        "refused": len(calls) - accepted,
        "reasons": sorted(set(reasons)),
    }


def ledger_after(
    ledger: Any, logs: Path, workers: int, rotation: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """After the run: the new key's sampled calls (accepted) and the old key's after
    the rotation was confirmed (each refused: the account is rekeyed)."""
    if not rotation:
        return {}
    samples = read_samples(logs, workers)
    new = [s for s in samples if s["key"] != 0][-args.ledger_sample :]
    late = [s for s in samples if s["key"] == 0 and s["end"] > rotation["confirmed"]]
    # One block each: every one must be refused on its own.
    refused = [ledger_check(ledger, [call]) for call in late[: args.ledger_refusals]]
    return {
        "new_key": ledger_check(ledger, new),
        "old_key_late": {
            "sampled": len(late),
            "evaluated": len(refused),
            "refused": sum(r["refused"] for r in refused),
            "reasons": sorted({x for r in refused for x in r["reasons"]}),
        },
    }


def read_records(logs: Path, summaries: list[dict[str, Any]], auth: str | None) -> list[list[Any]]:
    """Each worker's calls as [start, end, transactions, outcome], where a verified
    call's outcome is ``old``, ``new`` (the rotation's key) or ``other:<address>``."""
    out = []
    for number, summary in enumerate(summaries):
        calls = []
        for line in (logs / f"records-{number}.csv").read_text().splitlines():
            start, end, size, outcome = line.split(",", 3)
            if outcome.startswith("k"):
                address = summary["keys"][int(outcome[1:])]
                index = int(outcome[1:])
                outcome = "old" if index == 0 else "new" if address == auth else f"other:{address}"
            calls.append([float(start), float(end), int(size), outcome])
        out.append(calls)
    return out


def phases(slots: list[dict[str, Any]]) -> list[tuple[str, float, float]]:
    out = []
    for slot in slots:
        if "cleared" in slot:
            out.append((f"{slot['name']}: on", slot["began"], slot["cleared"]))
            out.append((f"{slot['name']}: after", slot["cleared"], slot["ended"]))
        else:
            out.append((slot["name"], slot["began"], slot["ended"]))
    return out


def ok(outcome: str) -> bool:
    return outcome in ("old", "new") or outcome.startswith("other:")


def phase_row(name: str, a: float, b: float, calls: list[list[Any]], group: int) -> dict[str, Any]:
    mine = [c for c in calls if a <= c[0] < b]
    errors = Counter(c[3][2:] for c in mine if c[3][:2] == "e:")
    throttles = Counter(c[3][2:] for c in mine if c[3][:2] == "t:")
    row: dict[str, Any] = {
        "phase": name,
        "seconds": b - a,
        "calls": len(mine),
        "signatures": sum(c[2] for c in mine if ok(c[3])),
        "errors": dict(errors),
        "throttles": sum(throttles.values()),
        "verify_failures": sum(1 for c in mine if c[3] == "v"),
    }
    row["per_second"] = row["signatures"] / row["seconds"] if row["seconds"] > 0 else None
    for label, size in (("singles", 1), ("groups", group)):
        ms = sorted((c[1] - c[0]) * 1000 for c in mine if c[2] == size)
        row[label] = [percentile(ms, 50), percentile(ms, 99), ms[-1] if ms else None]
    return row


def recovery(slot: dict[str, Any], workers: list[list[list[Any]]]) -> dict[str, Any]:
    """After a fault is cleared: each process's first verified signature, and the
    failed calls that started after the clearing (until the slot's end)."""
    cleared, ended = slot["cleared"], slot["ended"]
    firsts, failed, last = [], 0, None
    for calls in workers:
        ends = [c[1] for c in calls if ok(c[3]) and c[1] >= cleared]
        firsts.append(min(ends) - cleared if ends else None)
        # Calls still running at the slot's end are the next fault's to answer for.
        bad = [c for c in calls if not ok(c[3]) and cleared <= c[0] and c[1] < ended]
        failed += len(bad)
        if bad:
            last = max(last or 0.0, max(c[1] for c in bad) - cleared)
    during = [c for calls in workers for c in calls if slot["began"] <= c[0] < cleared]
    known = [f for f in firsts if f is not None]
    return {
        "fault": slot["name"],
        "note": slot.get("note", ""),
        "requests_faulted": slot.get("faulted"),
        "on_seconds": cleared - slot["began"],
        "failed_during": sum(1 for c in during if not ok(c[3])),
        "calls_during": len(during),
        "first_success": firsts,
        "recovered": max(known) if len(known) == len(firsts) else None,
        "failed_after": failed,
        "last_failure_after": last,
    }


def rotation_rows(
    rotation: dict[str, Any], slot: dict[str, Any], workers: list[list[list[Any]]], window: float
) -> list[dict[str, Any]]:
    t0 = rotation["confirmed"]
    rows = []
    for number, calls in enumerate(workers):
        new = [c[1] for c in calls if c[3] == "new"]
        old = [c for c in calls if c[3] == "old" and c[1] > t0]
        failed = [c for c in calls if not ok(c[3]) and t0 + window <= c[0] and c[1] < slot["ended"]]
        rows.append(
            {
                "process": number,
                "first_new": min(new) - t0 if new else None,
                "old_after": len(old),
                "old_signatures_after": sum(c[2] for c in old),
                "last_old": max(c[1] for c in old) - t0 if old else None,
                "failed_after_window": len(failed),
                "failed_types": dict(Counter(c[3] for c in failed)),
            }
        )
    return rows


def resources(series: list[list[list[float]]]) -> list[dict[str, Any]]:
    out = []
    for number, points in enumerate(series):
        row: dict[str, Any] = {"process": number, "samples": len(points)}
        for index, name in ((1, "rss_kb"), (2, "threads"), (3, "fds")):
            values = [p[index] for p in points]
            row[name] = [values[0], max(values), values[-1]] if values else None
        out.append(row)
    return out


def analyse(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Everything the page shows, from the run's raw figures (kept in the JSON too)."""
    rotation, slots = raw["rotation"], raw["slots"]
    auth = rotation.get("auth_address")
    workers = read_records(Path(raw["logs"]), raw["summaries"], auth)
    every = [c for calls in workers for c in calls]
    rows = [phase_row(n, a, b, every, args.group) for n, a, b in phases(slots)]
    whole = phase_row("whole run", slots[0]["began"], slots[-1]["ended"] + 1e9, every, args.group)
    outcomes = Counter(c[3] for c in every)
    [rotation_slot] = [s for s in slots if s["name"] == "rotation"]
    result: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in SETTINGS},
        "proxy": raw["proxy"],
        "proxy_stats": raw["proxy_stats"],
        "address": raw["address"],
        "slots": [{**s, **_relative(s, raw["go"])} for s in slots],
        "phases": rows,
        "whole": whole,
        "recovery": [recovery(s, workers) for s in slots if "cleared" in s],
        "rotation": {
            **{k: v for k, v in rotation.items() if k not in ("called", "confirmed")},
            "seconds": rotation["confirmed"] - rotation["called"],
            "at": rotation["confirmed"] - raw["go"],
            "observed": slots[-1]["ended"] - rotation["confirmed"],
            "processes": rotation_rows(rotation, rotation_slot, workers, args.window),
        },
        "resources": resources(raw["resources"]),
        "resource_series": raw["resources"],
        "signers": {k: v for k, v in outcomes.items() if ok(k)},
        "verify_failures": outcomes.get("v", 0),
        "warmup": [s["warmup"] for s in raw["summaries"]],
        "unfinished": sum(s["unfinished"] for s in raw["summaries"]),
        "ledger_after": raw["ledger_after"],
    }
    result["targets"] = targets(result, args.window)
    return result


def _relative(slot: dict[str, Any], go: float) -> dict[str, Any]:
    return {f"{k}_s": slot[k] - go for k in ("began", "cleared", "ended") if k in slot}


def targets(result: dict[str, Any], window: float) -> list[tuple[str, str, str]]:
    rows = result["rotation"]["processes"]
    observed = result["rotation"]["observed"]
    # Too short a run after the rotation cannot show a switch within the window.
    judged = observed >= window
    firsts = [r["first_new"] for r in rows]
    late = [r["last_old"] for r in rows if r["last_old"] is not None]
    failed = sum(r["failed_after_window"] for r in rows)
    whole = result["whole"]
    signed = whole["signatures"]
    before = result["rotation"]["ledger_before"]
    after = result["ledger_after"]
    new, old = after.get("new_key", {}), after.get("old_key_late", {})
    # Nothing to evaluate counts as met only where there was nothing to sample.
    sampled_ok = (
        before["calls"] > 0
        and before["refused"] == 0
        and (new.get("calls", 0) > 0 or "new" not in result["signers"])
        and new.get("refused", 0) == 0
        and old.get("refused") == old.get("evaluated")
    )
    return [
        (
            f"every process signs with the new key within {window:g} s of rotate_key returning",
            "slowest process: "
            + ("never" if None in firsts else f"{max(firsts):.3f} s")
            + f" ({', '.join('never' if f is None else f'{f:.3f}' for f in firsts)})",
            "met" if None not in firsts and max(firsts) <= window else _not(judged, observed),
        ),
        (
            f"no old-key signature later than {window:g} s after it",
            f"{sum(r['old_signatures_after'] for r in rows):,} old-key signatures after the "
            f"rotation, the last {max(late):.3f} s after"
            if late
            else "none after the rotation",
            "met" if judged and (not late or max(late) <= window) else _not(judged, observed),
        ),
        (
            f"0 failed calls after the {window:g} s window (until the next fault)",
            f"{failed} failed calls",
            "met" if judged and failed == 0 else _not(judged, observed),
        ),
        (
            "every signature verified (Ed25519, the key of the address it names)",
            f"{signed:,} signatures, {result['verify_failures']} calls failed verification",
            "met" if result["verify_failures"] == 0 and signed else "NOT met",
        ),
        (
            "the ledger sample: old key accepted before, new key after, late old key refused",
            f"before: {before['accepted']}/{before['calls']} accepted; after: "
            f"{new.get('accepted', 0)}/{new.get('calls', 0)} new-key accepted, "
            f"{old.get('refused', 0)}/{old.get('evaluated', 0)} late old-key refused",
            "met" if sampled_ok else "NOT met",
        ),
    ]


def _not(judged: bool, observed: float) -> str:
    return "NOT met" if judged else f"not judged: the run ended {observed:.1f} s after"


def _ms(triple: list[float | None]) -> str:
    return " / ".join(_num(x) for x in triple)


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


SECTION = "## Soak and fault run"


def write(page: str, out: Path) -> None:
    """The section to ``out``: what ``out`` holds before an earlier run's section is
    kept (a page's introduction), the section itself replaced."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and SECTION in out.read_text():
        text = out.read_text()
        page = text[: text.index(SECTION)] + page
    out.write_text(page)


def markdown(result: dict[str, Any]) -> str:
    settings, proxy, lib = result["settings"], result["proxy"], result["library"]
    lines = [
        SECTION,
        "",
        f"Generated by `{result['command']}` on {result['date']}, against confio_kms at "
        f"commit {lib['commit'][:12]}"
        + (" with uncommitted changes in confio_kms/" if lib["modified"] else "")
        + f" (source fingerprint {lib['source_sha256']}). Machine: {result['machine']}."
        + (f" {result['note']}" if result["note"] else ""),
        "",
        f"{settings['processes']} processes x {settings['threads']} threads (even threads "
        f"sign single payments, odd ones groups of {settings['group']}), one envelope key, "
        f"a shared {settings['cache']} cache, coalescing: {settings['coalesce']}. Every "
        f"request goes through the quota proxy ({proxy['rate']:g} GetParameter/s, burst "
        f"{proxy['burst']}, {proxy['delay_ms']:g} ms round trip) to moto's server. "
        f"{settings['seconds']:g} s in equal slots; each fault is on for "
        f"{settings['fault_seconds']:g} s, then cleared. The rotation (`rotate_key`: the "
        f"rekey submitted and confirmed on the sandbox ledger, then the alias switch) took "
        f"{result['rotation']['seconds']:.2f} s and returned {result['rotation']['at']:.1f} s "
        f"into the run, {result['rotation']['observed']:.1f} s before its end. A call "
        f"belongs to the phase it started in; latency includes failed calls.",
        "",
        "| phase | s | calls | signatures | signatures/s | errors by type | throttles "
        "surfaced | verification failures | singles p50 / p99 / max ms | groups p50 / p99 "
        "/ max ms |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in [*result["phases"], result["whole"]]:
        lines.append(
            f"| {r['phase']} | {r['seconds']:.1f} | {r['calls']:,} | {r['signatures']:,} "
            f"| {_num(r['per_second'])} | {_errors(r['errors'])} | {r['throttles']} "
            f"| {r['verify_failures']} | {_ms(r['singles'])} | {_ms(r['groups'])} |"
            if r is not result["whole"]
            else f"| **whole run** | | {r['calls']:,} | {r['signatures']:,} | | "
            f"{_errors(r['errors'])} | {r['throttles']} | {r['verify_failures']} "
            f"| {_ms(r['singles'])} | {_ms(r['groups'])} |"
        )
    lines += ["", *_recovery_table(result), "", *_rotation_table(result)]
    lines += ["", *_resource_table(result), "", "| target | measured | result |"]
    lines += ["| --- | --- | --- |", *[f"| {t} | {m} | {v} |" for t, m, v in result["targets"]]]
    return "\n".join(lines) + "\n"


def _recovery_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "Faults: recovery is the time from the fault being cleared to each process's "
        "first verified signature (the slowest process); failed calls after clearing "
        "are those that started after it and ended before the slot's end.",
        "",
        "| fault | on s | requests faulted | calls during / failed | recovered after s "
        "| failed after clearing | last failure after clearing s | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in result["recovery"]:
        lines.append(
            f"| {r['fault']} | {r['on_seconds']:.1f} | {_num(r['requests_faulted'])} "
            f"| {r['calls_during']:,} / "
            f"{r['failed_during']:,} | {_s(r['recovered'])} | {r['failed_after']} "
            f"| {_s(r['last_failure_after'])} | {r['note']} |"
        )
    return lines


def _rotation_table(result: dict[str, Any]) -> list[str]:
    rotation = result["rotation"]
    lines = [
        f"Rotation: state {rotation['state']}, new authorizing address "
        f"{rotation['auth_address']}. Times in seconds after `rotate_key` returned "
        f"(negative: before it); failed calls after the window: started after it, ended "
        f"before the next fault.",
        "",
        "| process | first new-key signature s | old-key calls after (signatures) "
        "| last old-key signature s | failed calls after the window |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rotation["processes"]:
        failed = r["failed_after_window"]
        types = _errors(r["failed_types"]) if failed else ""
        lines.append(
            f"| {r['process']} | {_s(r['first_new'])} | {r['old_after']:,} "
            f"({r['old_signatures_after']:,}) | {_s(r['last_old'])} | {failed}"
            + (f" ({types})" if types else "")
            + " |"
        )
    return lines


def _resource_table(result: dict[str, Any]) -> list[str]:
    lines = [
        "Each worker process over the run (first / max / last of the samples taken each "
        "second): RSS, threads, open file descriptors.",
        "",
        "| process | samples | RSS MB | threads | fds |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["resources"]:
        rss = " / ".join(f"{x / 1024:.1f}" for x in r["rss_kb"] or [])
        thr = " / ".join(str(x) for x in r["threads"] or [])
        fds = " / ".join(str(x) for x in r["fds"] or [])
        lines.append(f"| {r['process']} | {r['samples']} | {rss} | {thr} | {fds} |")
    return lines
