"""The NumPy LSTM engine: the trained network's forward pass without torch, one step or many.

Composing must start faster than ``import torch``, so sampling runs here, on the weights of
:class:`folkrnn.model.LanguageModel` loaded as NumPy arrays (folk-rnn's own fast sampler worked the
same way). This module imports only NumPy and folkrnn.errors; a test proves it never pulls in torch
and that its logits match torch's.

Each step is made cheap once, at load time:

- layer 0 needs no input product at all: ``embedding @ W_ih0.T + biases`` is folded into one
  ``(vocab, 4H)`` table, so a token's input contribution is a row lookup;
- layers above take ``[x | h] @ [W_ih | W_hh].T``, one product per layer per step;
- gate columns are reordered to input, forget, output, cell, and the three sigmoid gates' weights
  are halved (exact in binary), so ``sigmoid(z) = 0.5 + 0.5 * tanh(z / 2)`` turns all four gates
  into one ``tanh`` over a contiguous block;
- everything is float32 and the scratch buffers of each batch size are kept and reused.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np

from folkrnn.errors import ModelError

__all__ = ["NumpyLSTM", "State", "select_state"]

State = tuple[np.ndarray, np.ndarray]  # (h, c), each (layers, batch, hidden) float32


class NumpyLSTM:
    """The language model's forward pass in NumPy.

    Parameters
    ----------
    weights
        The torch model's state dict as NumPy arrays (any float dtype; kept as float32):
        ``embedding.weight``, ``lstm.{l}.weight_ih_l0``, ``lstm.{l}.weight_hh_l0``,
        ``lstm.{l}.bias_ih_l0``, ``lstm.{l}.bias_hh_l0``, ``head.weight``, ``head.bias``.
    """

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        w = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
        layers = 0
        while f"lstm.{layers}.weight_ih_l0" in w:
            layers += 1
        features = 0
        while f"feature_embeddings.{features}.weight" in w:
            features += 1
        expected = {"embedding.weight", "head.weight", "head.bias"} | {
            f"feature_embeddings.{k}.weight" for k in range(features)} | {
            f"lstm.{layer}.{kind}_l0" for layer in range(layers)
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        if layers == 0 or set(w) != expected:
            missing = sorted(expected - set(w)) if layers else ["lstm.0.weight_ih_l0"]
            extra = sorted(set(w) - expected)
            raise ModelError(f"weights do not fit the LSTM language model "
                             f"(missing {missing[:4]}, unexpected {extra[:4]})")
        vocab, width = w["embedding.weight"].shape
        hidden = w["lstm.0.weight_hh_l0"].shape[1]
        self.vocab_size, self.embedding_size, self.hidden_size, self.layers = vocab, width, hidden, layers
        shapes = {"embedding.weight": (vocab, width), "head.weight": (vocab, hidden), "head.bias": (vocab,)}
        for k in range(features):
            size = w[f"feature_embeddings.{k}.weight"].shape[0]
            shapes[f"feature_embeddings.{k}.weight"] = (size, width)
        for layer in range(layers):
            inputs = width if layer == 0 else hidden
            shapes |= {f"lstm.{layer}.weight_ih_l0": (4 * hidden, inputs),
                       f"lstm.{layer}.weight_hh_l0": (4 * hidden, hidden),
                       f"lstm.{layer}.bias_ih_l0": (4 * hidden,),
                       f"lstm.{layer}.bias_hh_l0": (4 * hidden,)}
        for name, shape in shapes.items():
            if w[name].shape != shape:
                raise ModelError(f"weight {name} has shape {w[name].shape}, expected {shape}")

        h = hidden
        # torch's gate order is i, f, g, o; ours is i, f, o, g (sigmoids first, contiguous)
        order = np.r_[0:2 * h, 3 * h:4 * h, 2 * h:3 * h]
        scale = np.ones(4 * h, dtype=np.float32)
        scale[:3 * h] = 0.5  # sigmoid(z) = 0.5 + 0.5 * tanh(z / 2)

        def prepare(matrix: np.ndarray) -> np.ndarray:  # (..., 4H) torch order -> ours, scaled
            return np.ascontiguousarray(matrix[..., order] * scale, dtype=np.float32)

        bias0 = w["lstm.0.bias_ih_l0"] + w["lstm.0.bias_hh_l0"]
        # (V, 4H): layer 0's input contribution of every token, biases included
        self._table = prepare(w["embedding.weight"] @ w["lstm.0.weight_ih_l0"].T + bias0)
        # (size_k, 4H) per position feature: its embedding's contribution, added to the token's
        self._feature_tables = [prepare(w[f"feature_embeddings.{k}.weight"] @ w["lstm.0.weight_ih_l0"].T)
                                for k in range(features)]
        self.features = features
        # (1 + F,): the values each input column may take (token ids, then each feature's)
        self._limits = np.array([vocab] + [len(table) for table in self._feature_tables], np.int64)
        self._w_hh0 = prepare(w["lstm.0.weight_hh_l0"].T)  # (H, 4H)
        self._w_stack = []  # per upper layer, (2H, 4H): rows [:H] act on x, rows [H:] on h
        self._bias = []  # per upper layer, (4H,)
        for layer in range(1, layers):
            stacked = np.concatenate([w[f"lstm.{layer}.weight_ih_l0"].T, w[f"lstm.{layer}.weight_hh_l0"].T])
            self._w_stack.append(prepare(stacked))
            self._bias.append(prepare(w[f"lstm.{layer}.bias_ih_l0"] + w[f"lstm.{layer}.bias_hh_l0"]))
        self._head_w = np.ascontiguousarray(w["head.weight"].T)  # (H, V)
        self._head_b = w["head.bias"].copy()
        self._work: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # _scratch's arrays

    def twin(self) -> NumpyLSTM:
        """A second engine over the same weights (shared, read-only) with work arrays of its own:
        two threads may step the two at once (one engine's steps must not overlap)."""
        twin = copy.copy(self)
        twin._work = None
        return twin

    def init_state(self, batch: int = 1) -> State:
        """Zero state ``(h, c)``, each ``(layers, batch, hidden)``."""
        shape = (self.layers, batch, self.hidden_size)
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def _scratch(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Work arrays for ``batch`` rows: the first rows of one set, grown to the largest batch yet
        (one set per batch size would keep gigabytes: continuous batching steps every size there is)."""
        buffers = self._work
        if buffers is None or len(buffers[0]) < batch:
            h = self.hidden_size
            buffers = (np.empty((batch, 2 * h), np.float32),  # [x | h] of an upper layer
                       np.empty((batch, 4 * h), np.float32),  # gates
                       np.empty((batch, h), np.float32))  # cell scratch
            self._work = buffers
        if len(buffers[0]) == batch:
            return buffers
        return buffers[0][:batch], buffers[1][:batch], buffers[2][:batch]  # C-contiguous views

    def _cell(self, gates: np.ndarray, c: np.ndarray, h_out: np.ndarray, scratch: np.ndarray) -> None:
        """Gates (pre-activations, our order and scale) -> new c (in place) and h (into h_out)."""
        hidden = self.hidden_size
        np.tanh(gates, out=gates)
        sig = gates[:, :3 * hidden]
        sig *= 0.5
        sig += 0.5
        i, f, o, g = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
        c *= f
        np.multiply(i, g, out=scratch)
        c += scratch
        np.tanh(c, out=scratch)
        np.multiply(o, scratch, out=h_out)

    def step(self, ids, state: State | None = None) -> tuple[np.ndarray, State]:
        """One step for a batch of sequences.

        Parameters
        ----------
        ids
            ``(B,)`` token ids (or one int for a batch of one); ``(B, 1 + F)`` for a model that
            reads F position features with each token.
        state
            ``(h, c)`` from :meth:`init_state` or a previous step; updated in place.

        Returns
        -------
        logits, state
            ``(B, vocab)`` float32 raw logits (a new array) and the state.
        """
        return self._step(ids, state, rowwise=False)

    def step_each(self, ids, state: State) -> tuple[np.ndarray, State]:
        """One step for a batch of sequences, each computed as :meth:`step` computes it on its own
        (at batch 1), bit for bit: the matrix products row by row (a batched product rounds
        otherwise), the rest (lookups, gates, cells) for the whole batch at once, which changes
        no bit (it is element by element). The decoding loop makes its exact rows so.

        Parameters and returns as for :meth:`step` (``state`` is required).
        """
        return self._step(ids, state, rowwise=True)

    def _step(self, ids, state: State | None, rowwise: bool) -> tuple[np.ndarray, State]:
        """:meth:`step` (the matrix products batched) or :meth:`step_each` (``rowwise``)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        ids, features = self._split(ids, 2)
        batch = ids.shape[0]
        if state is None:
            state = self.init_state(batch)
        h, c = state
        self._check_state(h, c, batch)
        xh, gates, scratch = self._scratch(batch)
        hidden = self.hidden_size

        def product(x: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
            if rowwise:  # (1, H) @ (H, 4H) a row at a time, as a batch of one makes it
                for row in range(batch):
                    np.dot(x[row:row + 1], w, out=out[row:row + 1])
            else:
                np.dot(x, w, out=out)

        product(h[0], self._w_hh0, gates)
        gates += self._table[ids]
        for table, values in zip(self._feature_tables, features):
            gates += table[values]
        self._cell(gates, c[0], h[0], scratch)
        for layer in range(1, self.layers):
            xh[:, :hidden] = h[layer - 1]
            xh[:, hidden:] = h[layer]
            product(xh, self._w_stack[layer - 1], gates)
            gates += self._bias[layer - 1]
            self._cell(gates, c[layer], h[layer], scratch)
        if rowwise:
            logits = np.concatenate([h[-1, row:row + 1] @ self._head_w for row in range(batch)])
        else:
            logits = h[-1] @ self._head_w
        logits += self._head_b
        return logits, state

    def run(self, ids, state: State | None = None) -> tuple[np.ndarray, State]:
        """Many steps for a batch of sequences (priming, scoring): one layer at a time.

        Parameters
        ----------
        ids
            ``(B, T)`` token ids, or ``(T,)`` for one sequence; with F position features,
            ``(B, T, 1 + F)`` or ``(T, 1 + F)``.
        state
            As in :meth:`step`; updated in place.

        Returns
        -------
        logits, state
            ``(B, T, vocab)`` (or ``(T, vocab)``) raw logits and the state after the last step.
        """
        ids = np.asarray(ids, dtype=np.int64)
        single = ids.ndim == (2 if self.features else 1)
        if single:
            ids = ids[None]
        ids, features = self._split(ids, 3)
        batch, steps = ids.shape
        if state is None:
            state = self.init_state(batch)
        h, c = state
        self._check_state(h, c, batch)
        hidden = self.hidden_size
        _, gates, scratch = self._scratch(batch)
        outputs = np.empty((steps, batch, hidden), np.float32)  # (T, B, H), this layer's h_t
        inputs = self._table[ids.T]  # (T, B, 4H) layer 0's input contributions
        for table, values in zip(self._feature_tables, features):
            inputs += table[values.T]
        for layer in range(self.layers):
            if layer == 0:
                w_hh = self._w_hh0
            else:
                w_stack = self._w_stack[layer - 1]
                w_hh = w_stack[hidden:]
                # every step's input contribution in one product: (T*B, H) @ (H, 4H)
                inputs = (outputs.reshape(steps * batch, hidden) @ w_stack[:hidden]).reshape(steps, batch, -1)
                inputs += self._bias[layer - 1]
            for t in range(steps):
                np.dot(h[layer], w_hh, out=gates)
                gates += inputs[t]
                self._cell(gates, c[layer], h[layer], scratch)
                outputs[t] = h[layer]
        logits = outputs @ self._head_w  # (T, B, V)
        logits += self._head_b
        logits = logits.transpose(1, 0, 2)
        return (logits[0] if single else np.ascontiguousarray(logits)), state

    def _split(self, ids: np.ndarray, rank: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Token ids and the feature columns of an input of ``rank`` dimensions with features, each
        checked against its range (one test for all of them: a step at batch 1 is short)."""
        if not self.features:
            if ids.ndim != rank - 1:
                raise ModelError(f"token ids must have {rank - 1} dimensions, not shape {ids.shape}")
            if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
                raise ModelError(f"token id out of range 0-{self.vocab_size - 1}: {ids.tolist()}")
            return ids, []
        if ids.ndim != rank or ids.shape[-1] != 1 + self.features:
            raise ModelError(f"this model reads {self.features} position features with each token: "
                             f"its input must be (..., {1 + self.features}), not shape {ids.shape}")
        if ids.size and ((ids < 0) | (ids >= self._limits)).any():
            bad = ((ids < 0) | (ids >= self._limits)).reshape(-1, 1 + self.features).any(axis=0)
            column = int(np.flatnonzero(bad)[0])
            if column == 0:
                raise ModelError(f"token id out of range 0-{self.vocab_size - 1}: {ids[..., 0].tolist()}")
            raise ModelError(f"position feature {column - 1} out of range 0-{self._limits[column] - 1}")
        return ids[..., 0], [ids[..., 1 + k] for k in range(self.features)]

    def _check_state(self, h: np.ndarray, c: np.ndarray, batch: int) -> None:
        shape = (self.layers, batch, self.hidden_size)
        if h.shape != shape or c.shape != shape or h.dtype != np.float32 or c.dtype != np.float32:
            raise ModelError(f"state must be two float32 arrays of shape {shape}, "
                             f"not {h.shape} {h.dtype} and {c.shape} {c.dtype}")


def select_state(state: State, rows) -> State:
    """The state of some batch rows (for beam search or dropping finished tunes), as copies."""
    h, c = state
    return np.ascontiguousarray(h[:, rows]), np.ascontiguousarray(c[:, rows])


