"""Generic decoding: token choice and strategies, shared by every constraint (ABC grammar, MIDI-event guard)."""

from folkrnn.decode.choice import NOISE, choose_tokens, one_blas_thread, rounding_noise, uniforms

__all__ = ["NOISE", "choose_tokens", "one_blas_thread", "rounding_noise", "uniforms"]
