"""The language model folkrnn trains: ModelConfig and a stacked-LSTM torch module (raw logits, explicit state).

Each layer is a one-layer ``torch.nn.LSTM`` (weights ``lstm.0.weight_ih_l0`` ...), so any tool that
knows nn.LSTM can read a checkpoint. Running the layers one at a time keeps dropout in our hands and
lets torch pick its fastest kernel per layer: oneDNN on a CPU, cuDNN on a GPU. (A hand-fused CPU
layer, one matrix product per step with pre-transposed weights and batched weight gradients, was
measured at 204/224 GFLOP/s forward/backward against oneDNN's 246/260 on the 2-core machine at
batch 64, so it was dropped.)

Dropout (folk-rnn: 0.5 after every LSTM layer) takes explicit keep-masks when the caller gives them,
so a distributed run can draw the masks of the global batch and give each rank its rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from folkrnn.errors import ModelError, OptionError
from folkrnn.limits import check_model_size, parameter_count

__all__ = ["ModelConfig", "LanguageModel"]


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the network: everything needed to rebuild it before loading weights."""

    vocab_size: int  # number of token ids, special tokens included
    embedding_size: int = 256  # width of the learned token embedding fed to the first layer
    hidden_size: int = 512  # units per LSTM layer (folk-rnn and Performance RNN: 512)
    layers: int = 3  # stacked LSTM layers (folk-rnn and Performance RNN: 3)
    dropout: float = 0.5  # probability of dropping a unit after each LSTM layer while training
    features: str = ""  # the position features read beside each token (folkrnn.abc.features.SCHEME); "" none
    feature_sizes: tuple[int, ...] = ()  # values each feature takes: one embedding table each, summed in

    def __post_init__(self) -> None:
        if isinstance(self.feature_sizes, list):
            object.__setattr__(self, "feature_sizes", tuple(self.feature_sizes))
        if not isinstance(self.features, str) or bool(self.features) != bool(self.feature_sizes) or any(
                not isinstance(size, int) or isinstance(size, bool) or size < 1 for size in self.feature_sizes):
            raise OptionError(f"model features {self.features!r} and feature sizes {self.feature_sizes!r} "
                              "do not fit: a named set of features needs positive sizes, and none needs none")
        for name in ("vocab_size", "embedding_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise OptionError(f"model {name} must be a positive integer, not {value!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise OptionError(f"model dropout must be in [0, 1), not {self.dropout!r}")
        check_model_size(self.to_dict())  # before torch allocates a weight (folkrnn.limits)

    def to_dict(self) -> dict:
        """The fields as a JSON-ready dict."""
        return asdict(self) | {"feature_sizes": list(self.feature_sizes)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Rebuild from :meth:`to_dict`'s output; unknown or missing fields raise ModelError."""
        if not isinstance(data, dict):
            raise ModelError(f"model config must be a JSON object, not {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(f"model config has unknown fields {unknown}")
        if "vocab_size" not in data:
            raise ModelError("model config has no vocab_size")
        try:
            return cls(**data)
        except (OptionError, TypeError) as error:
            raise ModelError(f"model config is invalid: {error}") from None

    def parameter_count(self, *, embedding: bool = True) -> int:
        """Number of weights; ``embedding=False`` leaves out the lookup table (no FLOPs)."""
        return parameter_count(self.vocab_size, self.embedding_size, self.hidden_size, self.layers,
                               self.feature_sizes, embedding=embedding)


class LanguageModel(nn.Module):
    """Embedding, stacked LSTM with dropout after each layer, linear output to raw logits.

    Parameters
    ----------
    config
        The network's shape.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        # one table per position feature, added to the token's embedding (folkrnn.abc.features)
        self.feature_embeddings = nn.ModuleList(nn.Embedding(size, config.embedding_size)
                                                for size in config.feature_sizes)
        self.lstm = nn.ModuleList(
            nn.LSTM(config.embedding_size if layer == 0 else config.hidden_size, config.hidden_size)
            for layer in range(config.layers))
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        # The forget gates start open (bias 1, Jozefowicz et al. 2015): with torch's default of 0
        # a 3-layer stack sits near the unigram loss for epochs (on 2,000 default-corpus tunes, 3 x
        # 128: valid 3.26 against 3.49 nats/token after 3 epochs; 2.42 with a constant rate).
        with torch.no_grad():
            hidden = config.hidden_size
            for lstm in self.lstm:
                lstm.bias_ih_l0[hidden:2 * hidden].fill_(1.0)
                lstm.bias_hh_l0[hidden:2 * hidden].zero_()

    def init_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state ``(h, c)``, each ``(layers, batch, hidden)``, on the model's device."""
        weight = self.head.weight
        shape = (self.config.layers, batch, self.config.hidden_size)
        return weight.new_zeros(shape), weight.new_zeros(shape)

    def forward(
        self,
        ids: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropout_masks: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits for the next token at every position.

        Parameters
        ----------
        ids
            ``(B, T)`` token ids, or ``(B, T, 1 + F)``: each token's id and its F features.
        state
            ``(h, c)``, each ``(layers, B, hidden)``; zeros when None.
        dropout_masks
            While training: one boolean keep-mask per layer, True = keep, time-major
            ``(T, B, hidden)`` as the layers run. When None, masks are drawn from torch's RNG.
            Ignored in eval mode.

        Returns
        -------
        logits, state
            ``(B, T, vocab)`` raw logits and the state after the last step.
        """
        batch, steps = ids.shape[:2]
        if state is None:
            state = self.init_state(batch)
        h0, c0 = state
        if ids.dim() == 3:
            if ids.shape[2] != 1 + len(self.feature_embeddings):
                raise ValueError(f"need {len(self.feature_embeddings)} features per token, got {ids.shape[2] - 1}")
            columns = ids.permute(2, 1, 0)  # (1 + F, T, B)
            x = self.embedding(columns[0])  # (T, B, E), time-major inside
            for table, values in zip(self.feature_embeddings, columns[1:]):
                x = x + table(values)
        else:
            if len(self.feature_embeddings):
                raise ValueError("this model reads position features with every token: ids must be (B, T, 1 + F)")
            x = self.embedding(ids.t())  # (T, B, E), time-major inside
        drop = self.training and self.config.dropout > 0
        keep = 1.0 - self.config.dropout
        if dropout_masks is not None and len(dropout_masks) != self.config.layers:
            raise ValueError(f"need {self.config.layers} dropout masks, got {len(dropout_masks)}")
        h_out, c_out = [], []
        for layer in range(self.config.layers):
            x, (h_last, c_last) = self.lstm[layer](x, (h0[layer:layer + 1], c0[layer:layer + 1]))
            h_out.append(h_last[0])
            c_out.append(c_last[0])
            if drop:
                if dropout_masks is None:
                    mask = torch.rand(x.shape, device=x.device) < keep  # (T, B, H)
                else:
                    mask = dropout_masks[layer]  # (T, B, H)
                # inverted dropout (the expected value is unchanged); the mask is scaled first, so
                # that x is read once forward and once backward (the same numbers as x*mask*scale)
                x = x * mask.to(x.dtype).mul_(1.0 / keep)
        logits = self.head(x)  # (T, B, V)
        return logits.transpose(0, 1), (torch.stack(h_out), torch.stack(c_out))
