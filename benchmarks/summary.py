"""One table of the benchmarks' figures, each as a ratio against its anchor from the same run.

    python benchmarks/summary.py [--out-dir benchmarks/out]

Reads what `make bench` wrote: `windows.json` (`bench_windows.py` on dev-v1.1),
`windows-x5.json` (the same on 5 x dev-v1.1), `input_pipeline.json`
(`bench_input_pipeline.py`), `inference.json` (`bench_inference.py`) and `evaluator.json`
(`bench_evaluator.py`). A figure whose file is missing is listed as not measured.
"""

from __future__ import annotations

import argparse
import json
import pathlib

OUT_DIR = pathlib.Path(__file__).resolve().parent / "out"


def _load(path: pathlib.Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def window_rows(result: dict | None, label: str) -> list[tuple]:
    """(figure, value, anchor, ratio, target) rows of one bench_windows.py run."""
    if result is None:
        return [(f"windowing ({label})", "not measured", "", "", "")]
    modes = {r["mode"]: r for r in result["rows"]}
    whole = modes["squad_lib-train"]["windows"] / modes["squad_lib-train"]["process_s"]
    rows = []
    for mode, name, target in (
        ("ours-train", "WindowMaker in process, training", ">= 10,000 w/s"),
        ("ours-eval", "WindowMaker in process, eval", ">= 10,000 w/s"),
    ):
        anchor = modes[mode.replace("ours", "squad_lib")]["windows_per_s"]
        rows.append((f"{name} ({label})", f"{modes[mode]['windows_per_s']:,.0f} w/s",
                     f"squad_lib {anchor:,.0f} w/s", modes[mode]["x_anchor"], target))
    rows.append((f"mbqa windows, whole process ({label})",
                 f"{modes['mbqa-windows']['windows_per_s']:,.0f} w/s",
                 f"squad_lib process {whole:,.0f} w/s", modes["mbqa-windows"]["x_anchor"],
                 ">= 5,000 w/s"))
    beams = sorted((m for m in modes if m.startswith("beam-")), key=lambda m: int(m[5:]))
    for mode in beams:
        rows.append((f"SquadTransform {mode}, whole Do ({label})",
                     f"{modes[mode]['seconds']:.1f} s",
                     f"squad_lib process {modes['squad_lib-train']['process_s']:.1f} s",
                     modes[mode]["x_anchor"], "> 1 (faster)"))
    if "beam-1" in modes and "beam-2" in modes:
        rows.append((f"SquadTransform 2 workers vs 1 ({label})",
                     f"{modes['beam-2']['seconds']:.1f} s",
                     f"beam-1 {modes['beam-1']['seconds']:.1f} s",
                     modes["beam-1"]["seconds"] / modes["beam-2"]["seconds"], ">= 1.5"))
    return rows


def input_pipeline_rows(result: dict | None) -> list[tuple]:
    if result is None:
        return [("training input pipeline", "not measured", "", "", "")]
    rows = []
    for row in result["rows"]:
        speeds = row["windows_per_s"]
        if "memory" in speeds:
            rows.append((f"training from TFRecords, {row['size']} size",
                         f"{speeds['records']:.2f} w/s", f"in memory {speeds['memory']:.2f} w/s",
                         speeds["records"] / speeds["memory"], ">= 0.95"))
        if "records+buckets" in speeds:
            tokens = row["mean_tokens_per_batch"]["records+buckets"]
            rows.append((f"training with length buckets, {row['size']} size",
                         f"{speeds['records+buckets']:.2f} w/s ({tokens:.0f} tokens/batch)",
                         f"trimmed {speeds['records+trim']:.2f} w/s",
                         speeds["records+buckets"] / speeds["records+trim"],
                         ">= 1.6 (published), < 220 tokens"))
    return rows


def inference_rows(result: dict | None) -> list[tuple]:
    if result is None:
        return [("TFLite inference", "not measured", "", "", "")]
    rows, model = [], result.get("model", "published size")
    by_format = {r["format"]: r for r in result["rows"]}
    for row in result["rows"]:
        rows.append((f"mbqa predict's path, {row['format']} ({model})",
                     f"{row['predict_windows_per_s']:.2f} w/s",
                     f"invoke loop {row['bare_windows_per_s']:.2f} w/s", row["ratio"],
                     ">= 0.9 (dynamic)"))
    anchor = by_format.get("float32", result["rows"][0])
    for row in result["rows"]:
        for key in sorted(k for k in row if k.startswith("latency_ms_")):
            threads = key.removeprefix("latency_ms_").removesuffix("t")
            rows.append((f"latency per window, {row['format']}, {threads} thread(s) ({model})",
                         f"{row[key]:.0f} ms",
                         f"{anchor['format']}, 1 thread {anchor['latency_ms_1t']:.0f} ms",
                         row[key] / anchor["latency_ms_1t"], "(reported)"))
    return rows


def evaluator_rows(result: dict | None) -> list[tuple]:
    if result is None:
        return [("evaluator, 2 workers vs 1", "not measured", "", "", "")]
    rows, model = [], result.get("model", "published size")
    runs: dict[str, dict[str, dict]] = {}
    for row in result["rows"]:
        runs.setdefault(row["format"], {})[row["run"]] = row
    for name, by_run in runs.items():
        anchor = by_run[result["anchor"]]
        for run, row in by_run.items():
            if run == result["anchor"] or row["workers"] == 1:  # threads alone: README
                continue
            rows.append((f"evaluator {run} vs {result['anchor']} (workers x threads), {name} "
                         f"({model}), steady", f"{row['steady_windows_per_s']:.2f} w/s",
                         f"{anchor['steady_windows_per_s']:.2f} w/s",
                         row["steady_windows_per_s"] / anchor["steady_windows_per_s"], ">= 1.7"))
            rows.append((f"evaluator {run} vs {result['anchor']}, {name}, "
                         f"{row['windows']}-window run", f"{row['span_windows_per_s']:.2f} w/s",
                         f"{anchor['span_windows_per_s']:.2f} w/s",
                         row["span_windows_per_s"] / anchor["span_windows_per_s"], "(reported)"))
        best = min(by_run.values(), key=lambda r: r["estimated_all_minutes"])
        rows.append((f"evaluator, all {best['all_windows']} windows, {name}, fastest run "
                     f"({best['run']}, est.)", f"{best['estimated_all_minutes']:.0f} min",
                     f"{result['anchor']} {anchor['estimated_all_minutes']:.0f} min",
                     anchor["estimated_all_minutes"] / best["estimated_all_minutes"],
                     "(reported)"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(OUT_DIR))
    out = pathlib.Path(parser.parse_args().out_dir)
    rows = (window_rows(_load(out / "windows.json"), "dev-v1.1")
            + window_rows(_load(out / "windows-x5.json"), "5 x dev-v1.1")
            + input_pipeline_rows(_load(out / "input_pipeline.json"))
            + inference_rows(_load(out / "inference.json"))
            + evaluator_rows(_load(out / "evaluator.json")))
    print("| figure | value | anchor (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    for figure, value, anchor, ratio, target in rows:
        ratio = f"{ratio:.2f}" if isinstance(ratio, float) else ratio
        print(f"| {figure} | {value} | {anchor} | {ratio} | {target} |")


if __name__ == "__main__":
    main()
