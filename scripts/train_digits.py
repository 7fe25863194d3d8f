"""Trains the small handwritten-digits classifier that ships with neoc (models/digits.onnx).

scikit-learn's bundled digits set (1,797 8x8 images, offline) trains an MLP
(64 -> 64 -> 32 -> 10); the weights are written as an ONNX graph with onnx.helper:
Flatten -> Gemm -> Relu -> Gemm -> Relu -> Gemm -> Softmax, input 'image' f32[1,1,8,8]
(pixel values 0..16 scaled to 0..1), output 'probabilities' f32[1,10].
A few held-out test images are saved as models/digits/sample_<label>.npy, and the first 100
held-out images (never seen in training: the 20% split below) with their labels as
models/digits/samples.npy (f32[100,1,8,8]) and models/digits/labels.npy (i64[100]), for the
demo's accuracy.

usage: python scripts/train_digits.py [--samples-only]   (needs scikit-learn; the outputs are
committed). --samples-only rewrites only the held-out samples from the same split, without
retraining: the split is deterministic (random_state=0), the training is left as it was.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

root = os.path.join(os.path.dirname(__file__), "..", "models")
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype(np.float32)
xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0)
os.makedirs(os.path.join(root, "digits"), exist_ok=True)
np.save(os.path.join(root, "digits", "samples.npy"), xte[:100].reshape(100, 1, 8, 8))
np.save(os.path.join(root, "digits", "labels.npy"), yte[:100].astype(np.int64))
if "--samples-only" in sys.argv:
    print("wrote models/digits/samples.npy and labels.npy (100 held-out images)")
    sys.exit(0)
clf = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=600, random_state=0).fit(xtr, ytr)
print(f"held-out accuracy: {clf.score(xte, yte):.4f}")

inits, nodes, prev = [], [helper.make_node("Flatten", ["image"], ["flat"], name="flatten")], "flat"
for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
    inits += [numpy_helper.from_array(w.astype(np.float32), f"w{i}"), numpy_helper.from_array(b.astype(np.float32), f"b{i}")]
    nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"fc{i}"], name=f"fc{i}"))
    prev = f"fc{i}"
    if i < len(clf.coefs_) - 1:
        nodes.append(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
        prev = f"relu{i}"
nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], name="softmax", axis=-1))
graph = helper.make_graph(
    nodes, "digits",
    [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, 8, 8])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 10])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="neoc-train-digits")
onnx.checker.check_model(model)
onnx.save(model, os.path.join(root, "digits.onnx"))
os.makedirs(os.path.join(root, "digits"), exist_ok=True)
for label in range(10):
    idx = int(np.where(yte == label)[0][0])
    np.save(os.path.join(root, "digits", f"sample_{label}.npy"), xte[idx].reshape(1, 1, 8, 8))
print("wrote models/digits.onnx and models/digits/sample_*.npy")
