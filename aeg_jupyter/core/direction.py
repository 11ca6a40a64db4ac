"""Which way a metric is better: inferred from its name, or recorded by the user with the artifact.

The leaderboard (panel and ``%aeg leaderboard``), ``%aeg best`` and ``gc``'s protection of each
leaderboard's leader rank by a metric without being told ``max`` or ``min``; this module decides.

* **Recorded** wins: a label ``metric_modes`` saved with an artifact, such as
  ``labels={"metric_modes": "loss:min,score:max"}``, names the direction of its metrics. The
  tutorial's ``save_*`` calls are unchanged: it is an ordinary (text) label; the newest artifact
  of the kind that records a metric's direction decides.
* **Inferred** from the name, split into words on ``_``, ``.``, ``-``, ``/``, spaces, digits and
  case changes (``val_loss``, ``valAcc``, ``top1-err``): the last word that names a known metric
  decides (``error_rate``: ``rate`` is unknown, so ``error`` decides: lower).
* **Unknown** (``temperature``): ``None``; the front ends ask (``--min``/``--max``, "choose").

Example:
    >>> infer_direction("val_loss"), infer_direction("valAcc"), infer_direction("temperature")
    ('min', 'max', None)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..base.validate import Mode

MODES_LABEL = "metric_modes"  # the label that records directions: {"metric": "min" | "max"}

_LOWER = """loss losses nll error errors err perplexity ppl latency time duration seconds secs sec ms
    mse mae rmse rmsle mape smape wer cer ter fid kid distance dist cost regret bpd bpc ece brier
    divergence kl miss misses fpr fnr eer"""
_HIGHER = """acc accuracy f1 f2 fbeta auc auroc roc auprc aupr ap map bleu rouge rougel meteor chrf
    reward rewards return returns precision recall score iou miou dice r2 ndcg mrr hit hits
    hitrate spearman pearson kappa mcc psnr ssim sharpe throughput tps qps fps top1 top5
    coverage success win winrate elo"""
LOWER_IS_BETTER = frozenset(_LOWER.split())  # words of metric names where lower is better
HIGHER_IS_BETTER = frozenset(_HIGHER.split())

_SPLIT = re.compile(r"[^A-Za-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_VALIDATION = frozenset({"val", "valid", "validation", "dev", "eval", "test", "holdout"})


def words(name: str) -> list[str]:
    """A metric name as lower-case words: ``"valAcc"`` -> ``["val", "acc"]``, ``"top1-err"`` -> ``["top1", "err"]``.

    Example:
        >>> words("val_loss"), words("eval.BLEU-4")
        (['val', 'loss'], ['eval', 'bleu', '4'])
    """
    out: list[str] = []
    for chunk in _SPLIT.split(name):
        for w in _CAMEL.split(chunk):
            if w:
                out.append(w.lower())
    return out


def infer_direction(name: str) -> Mode | None:
    """``"min"`` when lower is better, ``"max"`` when higher is, ``None`` when the name does not say.

    The whole name is tried first (``"f1"``, ``"top1"``), then its words from the last one back, the
    first known one deciding (``"error_rate"``: ``rate`` is unknown, ``error`` says lower). Digits
    stuck to a word are dropped (``"bleu4"`` -> ``bleu``, ``"rouge2"`` -> ``rouge``).

    Example:
        >>> [infer_direction(n) for n in ("loss", "val_accuracy", "trainPPL", "wer", "lr")]
        ['min', 'max', 'min', 'min', None]
    """
    if not isinstance(name, str) or not name:
        return None
    candidates = [name.lower(), *reversed(words(name))]
    for w in candidates:
        for form in (w, w.rstrip("0123456789"), w.rstrip("0123456789@")):
            if form in LOWER_IS_BETTER:
                return "min"
            if form in HIGHER_IS_BETTER:
                return "max"
    return None


def recorded_modes(labels: Mapping[str, Any] | None) -> dict[str, Mode]:
    """The directions recorded in an artifact's labels (the ``metric_modes`` label), as ``{metric: mode}``.

    The label is text, ``"metric:min,other:max"``; pieces that are not ``name:min`` or ``name:max`` are ignored.

    Example:
        >>> recorded_modes({"metric_modes": "a:max, b:min"}), recorded_modes({"exp": "A"})
        ({'a': 'max', 'b': 'min'}, {})
    """
    raw = (labels or {}).get(MODES_LABEL)
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(raw, Mapping):
        pairs = raw.items()
    elif isinstance(raw, str):
        pairs = (part.partition(":")[::2] for part in raw.split(","))
    else:
        return {}
    out: dict[str, Mode] = {}
    for metric, mode in pairs:
        mode = str(mode).strip().lower()
        if isinstance(metric, str) and metric.strip() and mode in ("max", "min"):
            out[metric.strip()] = mode  # type: ignore[assignment]
    return out


def collect_recorded(labels: Iterable[Mapping[str, Any] | None]) -> dict[str, Mode]:
    """Every direction recorded in ``labels`` (artifacts' labels, the newest first: the first one named wins).

    Example:
        >>> collect_recorded([{"metric_modes": "a:min"}, {"metric_modes": "a:max,b:max"}, {"exp": "A"}])
        {'a': 'min', 'b': 'max'}
    """
    out: dict[str, Mode] = {}
    for lab in labels:
        if lab and MODES_LABEL in lab:
            for metric, mode in recorded_modes(lab).items():
                out.setdefault(metric, mode)
    return out


def direction(metric: str, recorded: Iterable[Mapping[str, Any] | None] = ()) -> Mode | None:
    """The direction of ``metric``: recorded in the labels of any of ``recorded`` (the newest first), else inferred.

    Example:
        >>> direction("score", [{"metric_modes": "score:min"}]), direction("score")
        ('min', 'max')
    """
    for labels in recorded:
        mode = recorded_modes(labels).get(metric)
        if mode is not None:
            return mode
    return infer_direction(metric)


def is_validation(name: str) -> bool:
    """Whether a metric name reads as a held-out measure (``val_loss``, ``evalAcc``, ``dev-f1``, ``test.bleu``).

    Example:
        >>> is_validation("val_acc"), is_validation("train_acc")
        (True, False)
    """
    return any(w in _VALIDATION for w in words(name))


def default_metric(names: Iterable[str], modes: Mapping[str, Mode | None] | None = None) -> str | None:
    """The metric a practitioner would rank by first, among ``names``.

    A metric of known direction beats an unknown one; a validation metric (``val_*``, ``eval_*``,
    ``test_*``) beats a training one; among those, one that is higher-is-better (accuracy, f1) beats
    a loss, then the shorter name, then the alphabetical order. ``modes`` gives known directions
    (recorded ones); without it they are inferred.

    Example:
        >>> default_metric(["loss", "lr", "train_acc", "val_acc", "val_loss"])
        'val_acc'
        >>> default_metric(["epoch", "loss"]), default_metric(["lr", "epoch"]), default_metric([])
        ('loss', 'lr', None)
    """
    pool = list(dict.fromkeys(names))
    if not pool:
        return None
    known = dict(modes or {})

    def mode_of(n: str) -> Mode | None:
        return known[n] if known.get(n) is not None else infer_direction(n)

    return min(
        pool,
        key=lambda n: (mode_of(n) is None, not is_validation(n), mode_of(n) != "max", len(n), n),
    )


__all__ = [
    "HIGHER_IS_BETTER",
    "LOWER_IS_BETTER",
    "MODES_LABEL",
    "Mode",
    "collect_recorded",
    "default_metric",
    "direction",
    "infer_direction",
    "is_validation",
    "recorded_modes",
    "words",
]
