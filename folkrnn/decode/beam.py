"""Beam search over a :class:`~folkrnn.decode.loop.Constraint`: the most probable sequence, not a drawn one.

W hypotheses are extended by every allowed token; the W best by total log-probability (of the
tempered, masked distribution) live on. A hypothesis that ends is set aside; the search stops when W
have ended, when none is left alive, or when every extension fails. The ended row with the best
``log_prob / tokens ** length_penalty`` wins (``tokens``: every token after the start token).
Forced tokens are taken as they come, and score nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from folkrnn.decode.loop import DONE, Constraint, Row, inputs
from folkrnn.infer import select_state

__all__ = ["beam_search"]


def beam_search(engine, constraint: Constraint, *, index: int = 0, seed: int = 0, width: int = 4,
                temperature: float = 1.0, length_penalty: float = 0.7,
                on_step: Callable[[], None] | None = None) -> tuple[Row | None, str]:
    """The best ended row, or (None, why none ended). Deterministic: ``seed`` is only recorded."""
    features = getattr(engine, "features", 0)
    beams = [constraint.start(index, seed)]
    state = engine.init_state(1)
    ended: list[tuple[float, Row]] = []
    reason = ""
    while beams:
        logits, state = engine.step(inputs(beams, features), state)
        logits = constraint.adjust(logits, beams)
        if on_step is not None:
            on_step()
        masks = constraint.masks(beams)
        z = logits.astype(np.float64) / temperature
        z[~masks] = -np.inf
        top = z.max(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            logp = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))  # (W, V)
        candidates: list[tuple[float, int, int]] = []  # (score, beam, token)
        for b, row in enumerate(beams):
            if row.forced:
                token = row.forced[0]
                if masks[b, token]:
                    candidates.append((row.log_prob, b, token))
                continue
            allowed = np.flatnonzero(masks[b])
            if len(allowed) > width:
                best = allowed[np.argsort(-logp[b, allowed], kind="stable")[:width]]
            else:
                best = allowed
            candidates.extend((row.log_prob + float(logp[b, t]), b, int(t)) for t in best)
        if not candidates:
            reason = "the constraint left no allowed token"
            break
        candidates.sort(key=lambda item: (-item[0], item[1], item[2]))
        survivors: list[Row] = []
        parents: list[int] = []
        for score, b, token in candidates:
            if len(survivors) >= width:
                break
            row = constraint.fork(beams[b])
            forced = bool(row.forced)
            if forced:
                row.forced.pop(0)
            row.log_prob = score
            outcome = constraint.advance(row, token, not forced)
            if outcome == DONE:
                tokens_after_start = len(row.ids) - 1
                ended.append((score / max(tokens_after_start, 1) ** length_penalty, row))
            elif outcome:
                reason = outcome
            else:
                survivors.append(row)
                parents.append(b)
        if len(ended) >= width or not survivors:
            break
        state = select_state(state, parents)
        beams = survivors
    if not ended:
        return None, reason or "no hypothesis ended"
    ended.sort(key=lambda item: -item[0])
    return ended[0][1], ""
