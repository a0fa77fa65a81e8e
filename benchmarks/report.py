"""The benchmark's report: docs/benchmarks.md and docs/img/benchmarks.png."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.run import Target

APPROACHES = {
    "floor": "in-memory py-algorand-sdk signing (the floor)",
    "baseline": "old scripts: new boto3 client + SSM decrypt per transaction",
    "envelope": "KMSSigner, envelope key",
    "native": "KMSSigner, native key",
}


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _targets(t: Target) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) computed from this run's figures."""
    rows = {(r.approach, r.group): r for r in t.rows}
    env16, base16 = rows["envelope", 16].requests_per_call, rows["baseline", 16].requests_per_call
    ratios = {g: c.replayed / c.floor for g, c in t.local_cpu.items()}
    worst = max(ratios.values())
    native = rows["native", 16].median_ms / rows["native", 1].median_ms
    delayed = t.delayed_native[16] / t.delayed_native[1]
    caches = {k: v for k, v in t.shared_cache.items() if v is not None}
    out = [
        (
            "an envelope group of 16 costs 1 request (the baseline 16)",
            f"envelope {env16:g}, baseline {base16:g} requests per 16-transaction call",
            "met" if env16 == 1 and base16 == 16 else "NOT met",
        ),
        (
            "envelope signing's own CPU per signature (all but the request, answer "
            "replayed) within 1.5x the floor",
            ", ".join(f"group {g}: {r:.2f}x" for g, r in ratios.items()),
            "met" if worst <= 1.5 else "NOT met",
        ),
        (
            "a native group of 16 takes at most 3x one native signature",
            f"{native:.2f}x on this endpoint; {delayed:.2f}x with a simulated "
            f"20 ms round trip per Sign",
            "met"
            if native <= 3
            else ("met only with network latency" if delayed <= 3 else "NOT met"),
        ),
        (
            "a second process sharing Django's cache looks up the address with 0 requests",
            ", ".join(f"{k}: first {a}, second {b}" for k, (a, b) in caches.items())
            or "no cache server installed",
            "met" if caches and all(b == 0 for _, b in caches.values()) else "NOT met",
        ),
    ]
    return out


def _target_section(t: Target) -> list[str]:
    lines = [
        f"### {t.where}",
        "",
        "Per signing call: AWS requests (counted exactly with botocore's `before-send` "
        "event, retries included), median and p95 wall time, and signatures per second "
        "with 1 and 8 threads.",
        "",
        "| approach | group | requests per call | requests per signature | median ms | p95 ms "
        "| ms per signature | signatures/s, 1 thread | signatures/s, 8 threads |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in t.rows:
        lines.append(
            f"| {r.approach} | {r.group} | {r.requests_per_call:g} "
            f"| {r.requests_per_call / r.group:.3g} | {_fmt(r.median_ms)} | {_fmt(r.p95_ms)} "
            f"| {_fmt(r.median_ms / r.group)} | {_fmt(r.per_second_1)} | {_fmt(r.per_second_8)} |"
        )
    lines += [
        "",
        "First signature in a fresh process (building the clients, looking up the "
        "address, detecting the key's kind), median over fresh processes; imports "
        "(Django, boto3, py-algorand-sdk) are listed apart:",
        "",
        "| approach | requests | operations | median ms | imports ms |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for kind, c in t.cold.items():
        ops = ", ".join(c["operations"]) if c["operations"] else "varied between runs"
        lines.append(
            f"| {kind} | {c['requests']:g} | {ops} | {_fmt(c['median_ms'])} "
            f"| {_fmt(c['imports_ms'])} |"
        )
    lines += [
        "",
        "Envelope signing's own CPU per signature against the floor (µs, medians): "
        "the whole call less its request (botocore's first to last event for "
        "GetParameter: building, signing, sending and parsing it), split into the "
        "part before the request (encoding, signing policy, cache lookup) and the part "
        "after the answer (key decode and check, signing, audit record). First with "
        "GetParameter's real answer replayed in the process (botocore's `before-call` "
        "event), so nothing waits on a socket, the floor and the signer alternating "
        "call by call: the target is judged on this. Then on calls that really go to "
        "the endpoint, timed apart.",
        "",
        "| group | floor µs | replayed µs (before + after) | ratio "
        "| live µs (before + after) | ratio |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for group, own in t.local_cpu.items():
        lines.append(
            f"| {group} | {own.floor:.0f} | {own.replayed:.0f} ({own.replayed_before:.0f} + "
            f"{own.replayed_after:.0f}) | {own.replayed / own.floor:.2f} | {own.live:.0f} "
            f"({own.live_before:.0f} + {own.live_after:.0f}) | {own.live / own.floor:.2f} |"
        )
    one = t.local_cpu[1]
    before, after = one.live_before / one.replayed_before, one.live_after / one.replayed_after
    lines += [
        "",
        f"At group 1 the live calls took {before:.1f}x as long before the request "
        f"and {after:.1f}x as long after the answer as the replayed ones.",
    ]
    if min(before, after) > 1.2:
        lines[-1] += (
            " They run the same code: the code after the answer runs right after the "
            "thread wakes from its socket wait, the code before it right after the "
            "previous call's wait, which is consistent with caches and clocks gone cold "
            "while the endpoint's process had the CPU rather than with extra work. "
            "Against a remote AWS endpoint the endpoint's work is not on this machine's "
            "cores."
        )
    lines += [
        "",
        "Native keys with a simulated 20 ms network round trip (a sleep before each "
        "Sign request is sent, which releases the CPU as a network wait does):",
        "",
        "| group | median ms | ratio to one | this process's CPU ms, median "
        "| the endpoint's CPU ms, mean |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for group, ms in t.delayed_native.items():
        served = t.delayed_endpoint_cpu.get(group)
        lines.append(
            f"| {group} | {_fmt(ms)} | {ms / t.delayed_native[1]:.2f} "
            f"| {_fmt(t.delayed_native_cpu[group])} "
            f"| {_fmt(served) if served is not None else 'not measured'} |"
        )
    lines += ["", "Address lookup from two fresh processes sharing one cache server:", ""]
    lines += [
        "| cache | first process requests | second process requests |",
        "| --- | ---: | ---: |",
    ]
    for kind, counts in t.shared_cache.items():
        first, second = counts if counts else ("not installed", "-")
        lines.append(f"| {kind} | {first} | {second} |")
    lines += [
        "",
        "Envelope signatures byte-identical to py-algorand-sdk's for the same 16 "
        f"transactions: {'yes' if t.identical_signatures else 'NO'}.",
        "",
        "| target | measured | result |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in _targets(t)]
    return lines


def chart(targets: list[Target], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(targets), 2, figsize=(11, 4 * len(targets)), squeeze=False)
    width = 0.2
    for (latency, requests), t in zip(axes, targets, strict=True):
        for i, approach in enumerate(APPROACHES):
            rows = [r for r in t.rows if r.approach == approach]
            xs = [j + (i - 1.5) * width for j in range(len(rows))]
            latency.bar(xs, [r.median_ms / r.group for r in rows], width, label=approach)
            requests.bar(xs, [r.requests_per_call / r.group for r in rows], width, label=approach)
        for ax in (latency, requests):
            ax.set_xticks(range(3), [f"group of {g}" for g in (1, 4, 16)])
            ax.legend(fontsize=8)
        latency.set_yscale("log")
        latency.set_ylabel("median ms per signature (log)")
        latency.set_title(f"Time per signature: {t.name}")
        requests.set_ylabel("AWS requests per signature")
        requests.set_title(f"AWS requests per signature: {t.name}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write(
    targets: list[Target], machine: str, args: argparse.Namespace, out: Path, aws_note: str
) -> None:
    today = datetime.date.today().isoformat()
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python benchmarks/run.py` on {today}; each full run rewrites this "
        "page and the chart (`--quick` writes to a temporary directory). Install the "
        'extra first: `pip install -e ".[bench]"` '
        "(and `apt-get install redis-server memcached` for the shared-cache rows).",
        "",
        f"Machine: {machine}. Timed calls per row: {args.repeats}; throughput measured "
        f"over {args.seconds:g} s per cell; {args.cold_runs} fresh processes per cold start.",
        "",
        "What is compared:",
        "",
    ]
    lines += [f"- **{name}**: {text}" for name, text in APPROACHES.items()]
    lines += [
        "",
        "The baseline is the setup guide's scripts reimplemented in "
        "`benchmarks/baseline.py`: a signer instance looks up its address with "
        "DescribeKey + ListResourceTags, then every transaction gets a new boto3 SSM "
        "client and its own GetParameter with decryption. Its 8-thread figure gives "
        "each thread its own signer (boto3 sessions are not thread-safe); KMSSigner's "
        "threads share one.",
        "",
        "![time and requests per signature](img/benchmarks.png)",
        "",
    ]
    if aws_note:
        lines += [aws_note, ""]
    for t in targets:
        lines += [*_target_section(t), ""]
    lines += _reading(targets[0])
    out.mkdir(parents=True, exist_ok=True)
    chart(targets, out / "img" / "benchmarks.png")
    (out / "benchmarks.md").write_text("\n".join(lines).rstrip() + "\n")
    print("\n".join(lines))


def _reading(t: Target) -> list[str]:
    rows: dict[Any, Any] = {(r.approach, r.group): r for r in t.rows}
    native1, native16 = rows["native", 1].median_ms, rows["native", 16].median_ms
    endpoint16 = t.delayed_endpoint_cpu.get(16)  # not measured without /proc
    served = f", {_fmt(endpoint16)} ms per group," if endpoint16 is not None else ""
    return [
        "## Reading the local figures",
        "",
        "The local endpoint answers in a few milliseconds and its work is CPU, on the "
        f"same {os.cpu_count()} cores as the client, so concurrent requests cannot "
        "overlap much there: "
        f"a native group of 16 took {native16 / native1:.1f}x one signature "
        f"({_fmt(native16)} vs {_fmt(native1)} ms). Against a real network each "
        "request mostly waits, and waiting overlaps: with a simulated 20 ms round trip "
        f"the ratio was {t.delayed_native[16] / t.delayed_native[1]:.2f}x. What remains "
        "is CPU paid per request: the client's (botocore builds, signs and parses each "
        f"one, serialised by the GIL): {_fmt(t.delayed_native_cpu[16])} ms per group of "
        f"16 against {_fmt(t.delayed_native_cpu[1])} ms for one signature; and here "
        f"also the local endpoint's{served} on the same cores, which AWS does on its "
        "own machines. A run with AWS "
        "credentials adds the AWS section above, where the network wait is real.",
    ]
