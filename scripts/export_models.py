"""Exports the real-model test set from PyTorch (random weights, opset 17), stripped of weights.

Each model is exported with dynamic batch (and sequence) axes, so the graph carries the
Shape -> Gather -> Concat -> Reshape subgraphs that real exports have. Float initializers
larger than 64 elements are then replaced by a fill recipe (their mean and standard deviation,
in the tensor's metadata_props) so the committed files stay small; int64 initializers (shape
constants) are kept verbatim. `scripts/make_model_refs.py` rebuilds full models from the
recipes and computes onnxruntime's reference outputs.

Models: resnet50, mobilenet_v2, efficientnet_b0 (torchvision), bert (transformers BertModel,
12 layers, hidden 768, with attention mask; sequence 128), crnn_ocr (conv + bidirectional
LSTM, CTC-style head), vad_lstm (a voice-activity detector: conv front end + LSTM with state).

usage: python scripts/export_models.py OUT_DIR   (needs torch, torchvision, transformers)
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

torch.manual_seed(0)
OPSET = 17


class CRNN(torch.nn.Module):
    """A text-line recogniser: 1x32xW image -> per-column character log-probabilities."""

    def __init__(self, classes=37):
        super().__init__()
        c = torch.nn
        self.features = c.Sequential(
            c.Conv2d(1, 32, 3, padding=1), c.BatchNorm2d(32), c.ReLU(), c.MaxPool2d(2),
            c.Conv2d(32, 64, 3, padding=1), c.BatchNorm2d(64), c.ReLU(), c.MaxPool2d(2),
            c.Conv2d(64, 128, 3, padding=1), c.BatchNorm2d(128), c.ReLU(), c.MaxPool2d((2, 1)),
            c.Conv2d(128, 128, 3, padding=1), c.BatchNorm2d(128), c.ReLU(), c.MaxPool2d((4, 1)),
        )
        self.rnn = c.LSTM(128, 96, num_layers=2, bidirectional=True, batch_first=True)
        self.head = c.Linear(192, classes)

    def forward(self, x):
        f = self.features(x)  # [N, 128, 1, W/4]
        f = f.squeeze(2).permute(0, 2, 1)  # [N, W/4, 128]
        y, _ = self.rnn(f)
        return self.head(y).log_softmax(-1)


class VAD(torch.nn.Module):
    """A streaming voice-activity detector: 40 log-mel features per frame, LSTM state in/out."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(40, 64, 3, padding=1)
        self.lstm = torch.nn.LSTM(64, 64, batch_first=True)
        self.out = torch.nn.Linear(64, 1)

    def forward(self, feats, h, c):
        x = torch.relu(self.conv(feats.transpose(1, 2))).transpose(1, 2)
        y, (h2, c2) = self.lstm(x, (h, c))
        return torch.sigmoid(self.out(y)).squeeze(-1), h2, c2


class Bert(torch.nn.Module):
    """BertModel called by keyword, returning plain tensors."""

    def __init__(self, cfg):
        super().__init__()
        from transformers import BertModel

        self.bert = BertModel(cfg, add_pooling_layer=True)

    def forward(self, input_ids, attention_mask):
        o = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return o.last_hidden_state, o.pooler_output


def models():
    import torchvision
    from transformers import BertConfig

    yield "resnet50", torchvision.models.resnet50(), (torch.randn(1, 3, 224, 224),), ["input"], ["logits"], {"input": {0: "batch"}}
    yield "mobilenet_v2", torchvision.models.mobilenet_v2(), (torch.randn(1, 3, 224, 224),), ["input"], ["logits"], {"input": {0: "batch"}}
    yield "efficientnet_b0", torchvision.models.efficientnet_b0(), (torch.randn(1, 3, 224, 224),), ["input"], ["logits"], {"input": {0: "batch"}}
    cfg = BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    ids = torch.randint(0, cfg.vocab_size, (1, 128))
    mask = torch.ones(1, 128, dtype=torch.int64)
    mask[:, 100:] = 0
    yield (
        "bert", Bert(cfg), (ids, mask), ["input_ids", "attention_mask"],
        ["last_hidden_state", "pooler_output"], {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}},
    )
    yield "crnn_ocr", CRNN(), (torch.randn(1, 1, 32, 128),), ["image"], ["log_probs"], {"image": {0: "batch", 3: "width"}}
    yield (
        "vad_lstm", VAD(), (torch.randn(1, 32, 40), torch.zeros(1, 1, 64), torch.zeros(1, 1, 64)), ["features", "h", "c"],
        ["speech_prob", "h_out", "c_out"], {"features": {0: "batch", 1: "frames"}, "h": {1: "batch"}, "c": {1: "batch"}},
    )


def strip(model):
    for t in model.graph.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and a.size > 64:
            mean, std = float(a.mean()), float(a.std())
            dims, dt, name = list(t.dims), t.data_type, t.name
            t.Clear()
            t.name, t.data_type = name, dt
            t.dims.extend(dims)
            for k, v in (("neoc.fill", "normal"), ("neoc.mean", repr(mean)), ("neoc.std", repr(std))):
                e = t.metadata_props.add()
                e.key, e.value = k, v
    return model


def main(out):
    os.makedirs(out, exist_ok=True)
    only = sys.argv[2:]
    for name, module, args, inputs, outputs, dyn in models():
        if only and name not in only:
            continue
        module.eval()
        path = os.path.join(out, f"{name}.onnx")
        with torch.no_grad():
            torch.onnx.export(
                module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dyn,
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        m = strip(onnx.load(path))
        onnx.save(m, path)
        print(f"{name}: {os.path.getsize(path) / 1e3:.0f} kB, {len(m.graph.node)} nodes")


if __name__ == "__main__":
    main(sys.argv[1])
