"""The QaEvaluator's HTML report: one self-contained page (plots embedded as base64 PNGs).

Plots: EM/F1 of each evaluated model (the SavedModel and each TFLite format), F1 by
passage length and by answer length (buckets of words; also of the shipped file as the
Task Library answers, which reads only a passage's first window), and the shipped file
against the baseline's. The numbers come from `metrics.json` (see the executor) and the
per-question F1.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

from components.evaluator import data_summary, device_scores
from components.qa.squad import SquadExample

# (label, lowest word count) of the buckets, in order; a bucket ends where the next starts.
CONTEXT_BUCKETS = (("<100", 0), ("100-149", 100), ("150-199", 150), ("200-299", 200),
                   ("300+", 300))
ANSWER_BUCKETS = (("1", 1), ("2", 2), ("3-4", 3), ("5-9", 5), ("10+", 10))
NO_ANSWER = "no answer"


def _bucket(count: int, buckets: Sequence[tuple[str, int]]) -> str:
    label = buckets[0][0]
    for name, lowest in buckets:
        if count >= lowest:
            label = name
    return label


def answer_bucket(example: SquadExample) -> str:
    """The answer-length bucket: words of the first gold answer, or `NO_ANSWER`."""
    if example.is_impossible or not example.answer_texts:
        return NO_ANSWER
    return _bucket(len(example.answer_texts[0].split()), ANSWER_BUCKETS)


def context_bucket(example: SquadExample) -> str:
    """The passage-length bucket (words)."""
    return _bucket(len(example.context.split()), CONTEXT_BUCKETS)


def f1_by_bucket(
    examples: Sequence[SquadExample], f1: Mapping[str, float], bucket_of
) -> dict[str, tuple[float, int]]:
    """Mean F1 (percent) and question count per bucket (`bucket_of(example) -> label`)."""
    sums: dict[str, list[float]] = {}
    for example in examples:
        sums.setdefault(bucket_of(example), []).append(f1[example.id])
    return {label: (100.0 * sum(v) / len(v), len(v)) for label, v in sums.items()}


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bars(title: str, groups: Sequence[str], series: Mapping[str, Sequence[float]],
          ylabel: str = "%", counts: Sequence[int] | None = None) -> str:
    """A grouped bar chart as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(series))), 3.2))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        positions = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = axes.bar(positions, values, width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=7)
    labels = list(groups)
    if counts is not None:
        labels = [f"{g}\n(n={c})" for g, c in zip(groups, counts, strict=True)]
    axes.set_xticks(range(len(groups)), labels, fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def render_report(
    metrics: Mapping,
    examples: Sequence[SquadExample],
    f1_by_model: Mapping[str, Mapping[str, float]],
) -> str:
    """The report page. `metrics` is metrics.json's content; `f1_by_model` the per-question
    F1 (0..1) of each evaluated model by its display name (the candidate's first)."""
    models = metrics["models"]
    names = list(models)
    images = [_bars("EM / F1 by model", names, {
        "EM": [models[n]["exact_match"] for n in names],
        "F1": [models[n]["f1"] for n in names],
    })]
    for title, bucket_of, buckets in (
        ("F1 by passage length (words)", context_bucket, [b for b, _ in CONTEXT_BUCKETS]),
        ("F1 by answer length (words)", answer_bucket,
         [b for b, _ in ANSWER_BUCKETS] + [NO_ANSWER]),
    ):
        per_model = {n: f1_by_bucket(examples, f1, bucket_of) for n, f1 in f1_by_model.items()}
        present = [b for b in buckets if any(b in m for m in per_model.values())]
        first = next(iter(per_model.values()))
        images.append(_bars(
            title, present,
            {n: [m.get(b, (0.0, 0))[0] for b in present] for n, m in per_model.items()},
            counts=[first.get(b, (0.0, 0))[1] for b in present],
        ))
    baseline = metrics.get("baseline")
    if baseline:
        candidate = models[metrics["shipped"]]
        images.append(_bars("Shipped file vs the baseline's", ["EM", "F1"], {
            "candidate": [candidate["exact_match"], candidate["f1"]],
            "baseline": [baseline["exact_match"], baseline["f1"]],
        }))
    blessing = metrics["blessing"]
    verdict = "BLESSED" if blessing["blessed"] else "NOT BLESSED"
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{m['exact_match']:.2f}</td><td>{m['f1']:.2f}</td>"
        f"<td>{_size(m.get('size_bytes'))}</td><td>{_agreement(m.get('agreement'))}</td></tr>"
        for n, m in models.items()
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in blessing["reasons"])
    device = metrics.get("task_library")
    device_line = (f"<p>On the device: {html.escape(device_scores.describe(device))}.</p>"
                   if device else "")
    plots = "".join(f'<img alt="plot" src="data:image/png;base64,{png}">' for png in images)
    data = _data_section(metrics["data"]) if metrics.get("data") else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>QA evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
img{{display:block;margin:1em 0;max-width:100%}}</style></head><body>
<h1>QA evaluation: {verdict}</h1>
<p>{metrics['num_questions']} questions of split <code>{html.escape(metrics['eval_split'])}</code>
(SQuAD {'2.0' if metrics['version_2_with_negative'] else '1.1'} metrics).</p>
<ul>{reasons}</ul>
<table><tr><th>model</th><th>EM</th><th>F1</th><th>size</th>
<th>TFLite vs SavedModel (max |Δlogit|, same best span)</th></tr>{rows}</table>
{device_line}
{data}
{plots}
</body></html>
"""


def _data_section(data: Mapping) -> str:
    """Which spans trained and evaluated; the QA statistics beside the previous model's."""
    sentences, header, rows = data_summary.describe(data)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                    for row in rows)
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return ("<h2>Data</h2>" + "".join(f"<p>{html.escape(s)}</p>" for s in sentences)
            + f"<table><tr>{heads}</tr>{cells}</table>")


def _size(size_bytes: int | None) -> str:
    return "" if size_bytes is None else f"{size_bytes / 2**20:.2f} MiB"


def _agreement(agreement: Mapping | None) -> str:
    if not agreement:
        return ""
    diff = max(agreement["max_abs_diff_start"], agreement["max_abs_diff_end"])
    return (f"{diff:.4f}, {100 * agreement['same_best_span_share']:.1f}% "
            f"of {agreement['n_windows']} windows")
