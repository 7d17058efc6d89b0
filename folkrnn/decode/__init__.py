"""Generic decoding, shared by every constraint (the ABC grammar, the MIDI-event grammar): token
choice and strategies (:mod:`~folkrnn.decode.choice`), one batched loop over a constraint protocol
(:mod:`~folkrnn.decode.loop`), worker processes (:mod:`~folkrnn.decode.workers`) and beam search
(:mod:`~folkrnn.decode.beam`)."""

from folkrnn.decode.beam import beam_search
from folkrnn.decode.choice import NOISE, choose_tokens, one_blas_thread, rounding_noise, uniforms
from folkrnn.decode.loop import DONE, Constraint, Row, decode, run_batch
from folkrnn.decode.workers import MIN_PER_WORKER, default_workers

__all__ = ["NOISE", "choose_tokens", "one_blas_thread", "rounding_noise", "uniforms", "DONE", "Constraint", "Row",
           "decode", "run_batch", "beam_search", "MIN_PER_WORKER", "default_workers"]
