"""ESM-NAS Studio model: an ESM-2 encoder (cut to the searched depth, adapters merged, and
for a compacted model with fewer attention heads / feed-forward neurons per layer, as listed in
``config.esm_nas["compaction"]``) with the searched pooling and prediction head.

Self-contained: needs only ``torch`` and ``transformers`` (and ``esm_nas_shapes.py`` beside
it). Load it with
``AutoModelForSequenceClassification.from_pretrained(repo, trust_remote_code=True)``, or a
per-residue model with ``AutoModelForTokenClassification`` (one row of logits per token:
token i + 1 is residue i, after ``<cls>``). For regression the single logit is the prediction
in the label's units.

A pair model (``EsmNasForPairClassification``, loaded by the same Auto class) reads two
proteins: ``inputs = model.pair_inputs(tokenizer, first_sequences, second_sequences)`` then
``model(**inputs).logits``. A shared-encoder model pools each partner alone and combines them
([a+b, |a-b|, a*b], symmetric, or [a, b]); a cross-encoder reads both joined by 25 glycines.

An ensemble directory (``EsmNasEnsemble...``) holds several such models; its logits are the
log of the members' mean calibrated probabilities divided by the ensemble's own temperature
(softmax gives the calibrated mean) or, for regression, their mean value; ``spread`` is
the members' standard deviation (of each class's probability, or of the value): the
ensemble's uncertainty.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import EsmConfig, EsmModel, EsmPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import ModelOutput

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}
_REGRESSION = ("regression", "residue_regression", "pair_regression")
_PAIR_WIDTH = {"symmetric": 3, "concat": 2, "cross": 1}  # pooled vectors the head reads
PAIR_LINKER = "G" * 25  # between a cross-encoder's two partners


class _AttentionPooling(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.score = nn.Linear(hidden, 1)

    def forward(self, states, mask):
        scores = self.score(states).squeeze(-1).float()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1).to(states.dtype)
        return torch.einsum("bl,blh->bh", weights, states)


class _ConvHead(nn.Module):
    """Per-residue head over 7 neighbouring residues (as ESM-NAS Studio trains it)."""

    def __init__(self, hidden, arch, n_outputs):
        super().__init__()
        self.conv = nn.Conv1d(hidden, arch["head_width"], 7, padding=3)
        self.act = _ACTIVATIONS[arch["activation"]]()
        self.dropout = nn.Dropout(arch["dropout"])
        self.out = nn.Linear(arch["head_width"], n_outputs)

    def forward(self, states):
        x = self.act(self.conv(states.transpose(1, 2))).transpose(1, 2)
        return self.out(self.dropout(x))


class _EsmNasBase(EsmPreTrainedModel):
    config_class = EsmConfig
    _keys_to_ignore_on_load_unexpected = [r"classifier\."]

    def __init__(self, config):
        super().__init__(config)
        meta = config.esm_nas
        arch = meta["architecture"]
        self.task = meta["task"]
        self.regression = self.task in _REGRESSION
        self.per_residue = self.task.startswith("residue_")
        self.pair_head = arch.get("pair_head", "symmetric") if self.task.startswith("pair_") \
            else None
        self.pooling = arch["pooling"]
        self.esm = EsmModel(config, add_pooling_layer=False)
        self.esm.contact_head = None
        compaction = meta.get("compaction")
        if compaction:  # per-layer heads and widths of a pruned model
            from .esm_nas_shapes import reshape_encoder

            reshape_encoder(self.esm, compaction["heads"], compaction["ffn"])
        hidden = config.hidden_size
        self.pool = (_AttentionPooling(hidden) if self.pooling == "attention"
                     and not self.per_residue else None)
        n_outputs = 1 if self.regression else len(meta["label_names"])
        if self.per_residue and arch.get("residue_head") == "conv":
            self.head = _ConvHead(hidden, arch, n_outputs)
        else:
            layers, width = [], hidden * _PAIR_WIDTH.get(self.pair_head, 1)
            for _ in range(arch["head_layers"]):
                layers += [nn.Dropout(arch["dropout"]), nn.Linear(width, arch["head_width"]),
                           _ACTIVATIONS[arch["activation"]]()]
                width = arch["head_width"]
            layers += [nn.Dropout(arch["dropout"]), nn.Linear(width, n_outputs)]
            self.head = nn.Sequential(*layers)
        self.register_buffer("target_scale", torch.tensor(
            [float(meta["target_std"]), float(meta["target_mean"])]), persistent=False)
        # classification: logits divided by the temperature fitted on the validation split,
        # so softmax(logits) are calibrated probabilities
        self.temperature = float(meta.get("temperature", 1.0))
        self.post_init()

    def _init_weights(self, module):
        return  # every weight comes from the checkpoint

    def _residues(self, input_ids, attention_mask):
        eos = self.config.eos_token_id if self.config.eos_token_id is not None else 2
        residues = attention_mask.bool() & (input_ids != eos)
        residues[:, 0] = False
        return residues

    def _pooled(self, input_ids, attention_mask):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        residues = self._residues(input_ids, attention_mask)
        if self.pool is not None:
            return self.pool(states, residues)
        w = residues.to(states.dtype).unsqueeze(-1)
        return (states * w).sum(1) / w.sum(1).clamp(min=1.0)

    def _output(self, pooled, labels):
        logits = self.head(pooled)
        if self.regression:
            logits = logits * self.target_scale[0] + self.target_scale[1]
        else:
            logits = logits / self.temperature
        loss = None
        if labels is not None:
            if self.regression:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = nn.functional.cross_entropy(logits, labels.long())
        return SequenceClassifierOutput(loss=loss, logits=logits)


class EsmNasForTokenClassification(_EsmNasBase):
    """A per-residue model: logits (batch, tokens, classes), or values in the label's units."""

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        states = self.esm(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = self._residues(input_ids, attention_mask)
        logits = self.head(states * keep.unsqueeze(-1).to(states.dtype))
        if self.regression:
            logits = logits * self.target_scale[0] + self.target_scale[1]
        else:
            logits = logits / self.temperature
        loss = None
        if labels is not None:  # -100 (classes) or NaN (values) where there is no label
            if self.regression:
                known = torch.isfinite(labels.float())
                loss = nn.functional.mse_loss(logits.squeeze(-1)[known], labels.float()[known])
            else:
                loss = nn.functional.cross_entropy(logits.flatten(0, 1), labels.long().flatten(),
                                                   ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)


class EsmNasForSequenceClassification(_EsmNasBase):

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        return self._output(self._pooled(input_ids, attention_mask), labels)


def pair_inputs(tokenizer, first, second, heads):
    """What pair models with these ``heads`` read: each partner alone (``input_ids``,
    ``input_ids_2`` and their masks) for a shared encoder, both joined by the linker
    (``joined_*``) for a cross-encoder; an ensemble mixing the two gets both."""
    out = {}
    if heads - {"cross"}:
        one = tokenizer(list(first), padding=True, return_tensors="pt")
        two = tokenizer(list(second), padding=True, return_tensors="pt")
        out.update(input_ids=one["input_ids"], attention_mask=one["attention_mask"],
                   input_ids_2=two["input_ids"], attention_mask_2=two["attention_mask"])
    if "cross" in heads:
        joined = tokenizer([a + PAIR_LINKER + b for a, b in zip(first, second)],
                           padding=True, return_tensors="pt")
        out.update(joined_input_ids=joined["input_ids"],
                   joined_attention_mask=joined["attention_mask"])
    return out


class EsmNasForPairClassification(_EsmNasBase):
    """One prediction per pair of proteins (interaction, affinity)."""

    def pair_inputs(self, tokenizer, first, second):
        """The inputs of ``forward`` for two lists of sequences (pair i: first[i] with
        second[i]), padded tensors."""
        return pair_inputs(tokenizer, first, second, {self.pair_head})

    def forward(self, input_ids=None, attention_mask=None, input_ids_2=None,
                attention_mask_2=None, joined_input_ids=None, joined_attention_mask=None,
                labels=None, **kwargs):
        if self.pair_head == "cross":  # the joined pair (or input_ids already joined)
            if joined_input_ids is not None:
                input_ids, attention_mask = joined_input_ids, joined_attention_mask
            return self._output(self._pooled(input_ids, attention_mask), labels)
        a = self._pooled(input_ids, attention_mask)
        b = self._pooled(input_ids_2, attention_mask_2)
        if self.pair_head == "symmetric":
            combined = torch.cat([a + b, (a - b).abs(), a * b], dim=-1)
        else:
            combined = torch.cat([a, b], dim=-1)
        return self._output(combined, labels)


@dataclass
class EnsembleOutput(ModelOutput):
    """``logits``: log mean probability per class over the ensemble's temperature (or the
    mean value); ``spread``: the members' standard deviation of their probabilities (or
    values); ``member_outputs``: each member's probabilities (or values), stacked first."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    spread: torch.FloatTensor | None = None
    member_outputs: torch.FloatTensor | None = None


class _EsmNasEnsembleBase(EsmPreTrainedModel):
    config_class = EsmConfig
    base_model_prefix = "ensemble"
    member_class: type = EsmNasForSequenceClassification

    def __init__(self, config):
        super().__init__(config)
        meta = config.esm_nas
        self.regression = meta["task"] in _REGRESSION
        # classification: the averaged probabilities' own temperature (fitted on the
        # validation split after averaging; each member carries its own as well)
        self.temperature = float(meta.get("temperature", 1.0))
        self.members = nn.ModuleList([self.member_class(EsmConfig.from_dict(member))
                                      for member in meta["ensemble"]["members"]])
        self.post_init()

    def _init_weights(self, module):
        return  # every weight comes from the checkpoint

    def pair_inputs(self, tokenizer, first, second):
        return pair_inputs(tokenizer, first, second, {m.pair_head for m in self.members})

    def forward(self, input_ids=None, attention_mask=None, labels=None, **kwargs):
        pair = {k: v for k, v in kwargs.items() if k in (
            "input_ids_2", "attention_mask_2", "joined_input_ids", "joined_attention_mask")}
        outputs = [m(input_ids=input_ids, attention_mask=attention_mask, **pair).logits.float()
                   for m in self.members]
        if self.regression:
            stacked = torch.stack(outputs)  # members' values in the label's units
            mean = stacked.mean(0)
            logits = mean
        else:
            stacked = torch.stack([o.softmax(-1) for o in outputs])
            mean = stacked.mean(0)
            logits = mean.clamp(min=1e-12).log() / self.temperature
        spread = stacked.std(0, unbiased=False)
        loss = None
        if labels is not None:
            if self.regression:
                known = torch.isfinite(labels.float())
                loss = nn.functional.mse_loss(logits.squeeze(-1)[known], labels.float()[known])
            else:
                # logits are log-probabilities up to the temperature: cross-entropy
                # normalises them again
                loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                   labels.long().reshape(-1), ignore_index=-100)
        return EnsembleOutput(loss=loss, logits=logits, spread=spread, member_outputs=stacked)


class EsmNasEnsembleForSequenceClassification(_EsmNasEnsembleBase):
    member_class = EsmNasForSequenceClassification


class EsmNasEnsembleForTokenClassification(_EsmNasEnsembleBase):
    member_class = EsmNasForTokenClassification


class EsmNasEnsembleForPairClassification(_EsmNasEnsembleBase):
    member_class = EsmNasForPairClassification
