"""Evaluation reports as text: one model's, and several models side by side."""
from __future__ import annotations

from pathlib import Path


def _num(v, fmt: str = ".3f") -> str:
    """A metric for a report ('n/a' where it was not measured)."""
    return "n/a" if v is None else format(v, fmt)


def format_comparison(c: dict) -> str:
    """The result of `compare_models` as a table: a column per model, each cell the mean over seeds and, in
    brackets, the value of each seed."""
    num = _num
    rows = [("FD ↓ all", "fd", ".2f"), ("FD ↓ halves", "fd_halves", ".2f"), ("R-precision ↑", "r_precision", ".3f"),
            ("R-precision per concept ↑", "r_precision_concepts", ".3f"),
            ("R-precision, look-alikes ↑", "r_precision_look_alikes", ".3f"), ("Diversity ratio", "diversity_ratio", ".2f")]
    seeds = ", ".join(map(str, c["seeds"]))
    lines = [f"t2igan eval: {len(c['models'])} model(s) × seeds {seeds} on {c['data']} ({c['split']}: {c['n']} images, "
             f"{c['concepts']} concepts)",
             "each cell: mean over seeds (each seed's value)", ""]
    table = [["metric"] + [m["model"] for m in c["models"]],
             ["truncation"] + [num(m.get("truncation"), "g") for m in c["models"]]]
    for label, key, fmt in rows:
        table.append([label] + [f"{num(m['mean'][key], fmt)} ({' '.join(num(v, fmt) for v in m['per_seed'][key])})"
                                for m in c["models"]])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    ref = c["references"]
    lines += ["", "references (real images, mean over seeds):",
              f"  FD all: real other split vs real {c['split']} {num(ref['fd_other_split'], '.2f')} · FD halves: real "
              f"half vs real half {num(ref['fd_real_halves'], '.2f')} (floor)",
              f"  R-precision {num(ref['r_precision_real'], '.3f')}, per concept "
              f"{num(ref['r_precision_concepts_real'], '.3f')}, among look-alikes "
              f"{num(ref.get('r_precision_look_alikes_real'), '.3f')} (ceilings)"]
    if c.get("by"):
        values = list(c["models"][0].get("by") or {})
        w = max([len(v) for v in values] + [len(c["by"])])
        lines += ["", f"R-precision per concept ↑ by {c['by']}, mean over seeds (real-image ceiling last):"]
        names = [Path(m["model"]).name for m in c["models"]]
        if len(set(names)) < len(names):  # two folders of one name: number the columns in the order given
            names = [f"{i}:{n}"[:12] for i, n in enumerate(names, 1)]
        else:
            names = [n[-12:] for n in names]
        lines.append(f"  {c['by']:<{w}}  " + "  ".join(f"{n:>12}" for n in names) + "  ceiling")
        for v in values:
            lines.append(f"  {v:<{w}}  " + "  ".join(f"{num(m['by'].get(v), '.3f'):>12}" for m in c["models"])
                         + f"  {num(c['models'][0]['by_real'].get(v), '.3f'):>7}")
    return "\n".join(lines)


def format_report(r: dict) -> str:
    """The result of `evaluate_model` as a readable table."""
    num = _num

    def pm(se):  # a standard error beside its number
        return "" if se is None else f"±{se:.3f}"

    lines = [f"t2igan eval: {r.get('model', '?')} on {r['data']} "
             f"({r['split']}: {r['n']} images, {r['concepts']} concepts)",
             f"evaluator: {r['evaluator']}   seed {r['seed']}   truncation {_num(r.get('truncation'), 'g')}", ""]
    half = r["fd_real_halves_n"]
    other = (f"{num(r['fd_other_split'], '.2f')} real {r.get('other_split')} vs real {r['split']} "
             f"(N={r['fd_other_split_n']}: other concepts, real quality)"
             ) if r.get("fd_other_split") is not None else ""
    same_n = r.get("fd_other_split_n") == r["fd_n"]
    rows = [("metric", "model", "real-image reference (same protocol)"),
            (f"FD ↓ all: {r['fd_n']} generated vs {r['fd_n']} real", num(r["fd"], ".2f"), other if same_n else ""),
            (f"FD ↓ halves: {half} generated vs other {half} real", num(r.get("fd_halves"), ".2f"),
             f"{num(r['fd_real_halves'], '.2f')} real half vs other real half (floor)"
             + (f" · {num(r.get('fd_real_halves_blur16'), '.2f')} / {num(r.get('fd_real_halves_blur8'), '.2f')}"
                " same, blurred to 16 / 8 px" if r.get("fd_real_halves_blur16") is not None else "")),
            (f"R-precision ↑ (1 of {r['r_precision_candidates']})", num(r["r_precision"]),
             f"{num(r['r_precision_real'])} real images (ceiling) · {num(r['r_precision_chance'])} chance"),
            ("R-precision per concept ↑ (each concept once)",
             f"{num(r.get('r_precision_concepts'))} {pm(r.get('r_precision_concepts_se'))}".rstrip(),
             f"{num(r.get('r_precision_concepts_real'))} real images (ceiling)"),
            (f"R-precision among look-alikes ↑ (1 of {r.get('r_precision_look_alikes_candidates')})",
             num(r.get("r_precision_look_alikes")),
             f"{num(r.get('r_precision_look_alikes_real'))} real images (ceiling) · "
             f"{num(1 / r['r_precision_look_alikes_candidates'] if r.get('r_precision_look_alikes_candidates') else None)} chance"),
            (f"Diversity ({r['diversity_seeds']} seeds × {r['diversity_prompts']} prompts)", num(r["diversity"]),
             f"{num(r['diversity_real'])} same name, other vendor · {num(r['diversity_real_any'])} any two images"),
            ("Diversity ratio (≈1 good, ≪1 collapse)", num(r["diversity_ratio"], ".2f"), "")]
    if other and not same_n:  # not comparable with the model's FD at another N: a reference line of its own
        rows.insert(3, (f"FD, real vs real at N={r['fd_other_split_n']}", "", other))
    w0, w1 = max(len(a) for a, _, _ in rows), max(len(b) for _, b, _ in rows)
    for a, b, c in rows:
        lines.append(f"{a:<{w0}}  {b:>{w1}}  {c}".rstrip())
    if r.get("r_precision_by"):
        real = r.get("r_precision_by_real") or {}
        lines += ["", f"R-precision per concept ↑ by {r['by']}: "
                      "model ± standard error · real images (ceiling) · concepts",
                  "  (a difference within about two standard errors is noise: compare models on several --seed values)"]
        w = max(len(v) for v in r["r_precision_by"])
        for v, m in r["r_precision_by"].items():
            lines.append(f"  {v:<{w}}  {num(m['r_precision'])} {pm(m.get('se')):>6}  "
                         f"{num(real.get(v, {}).get('r_precision'))}  "
                         f"{m['concepts']:>4}")
    lines += ["", "FD is biased upward at small N: compare a model with the reference on its own row (equal N). "
                  f"{r.get('total_s', r['eval_s']):.1f} s."]
    return "\n".join(lines)
