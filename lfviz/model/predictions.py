"""What a run predicts, as plain data that can be compared between two configurations."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Predictions:
    """Ranked predictions of one run.

    kind:  "similarity" (document vs queries), "fill-mask", "question-answering" or "classification".
    rows:  best first; each has "label" (what is predicted) and "score" (cosine or probability), plus
           kind-specific fields ("position"/"token" for fill-mask, "start"/"end" token spans for QA).
    token_scores: similarity only, one list of n per-token scores per query (the match strip); with no query,
           one list: each token's similarity to the whole document.
    token_score_labels: what each list of token_scores is about.
    next_tokens: next-token (causal LM) only: per position i, the top-k [token, probability] pairs the model
           expects right after token i.
    """

    kind: str
    rows: list[dict] = field(default_factory=list)
    token_scores: list[list[float]] | None = None
    token_score_labels: list[str] | None = None
    note: str = ""
    next_tokens: list[list[tuple[str, float]]] | None = None

    def summary(self) -> dict[str, float]:
        """label -> score, the numbers to diff between a baseline and a variant."""
        return {r["label"]: float(r["score"]) for r in self.rows}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Predictions":
        return cls(**d)


def diff_predictions(base: Predictions, variant: Predictions) -> list[dict]:
    """One row per label in either run: scores, delta and rank in each (rank 1 = best; None = not listed).

    Ordered by the baseline's ranking, then labels only the variant lists.
    """
    if base.kind != variant.kind:
        raise ValueError(f"cannot compare {base.kind!r} predictions with {variant.kind!r} predictions")
    b, v = base.summary(), variant.summary()
    b_rank = {label: i + 1 for i, label in enumerate(b)}
    v_rank = {label: i + 1 for i, label in enumerate(v)}
    rows = []
    for label in list(b) + [x for x in v if x not in b]:
        bs, vs = b.get(label), v.get(label)
        br, vr = b_rank.get(label), v_rank.get(label)
        rows.append({
            "label": label, "baseline": bs, "variant": vs,
            "delta": None if bs is None or vs is None else vs - bs,
            "baseline_rank": br, "variant_rank": vr,
            "rank_change": None if br is None or vr is None else br - vr,  # > 0: moved up
        })
    return rows
