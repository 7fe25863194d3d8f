"""Tests of the neoc_runtime Python package against artifacts compiled by neoc.

Run by scripts/test.sh after building the wheel with maturin:
    NEOC_BIN=target/release/neoc python -m unittest discover -s runtime/python/tests -v
"""
import concurrent.futures
import os
import subprocess
import tempfile
import unittest

import numpy as np

import neoc_runtime

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NEOC = os.environ.get("NEOC_BIN", os.path.join(ROOT, "target", "release", "neoc"))
MODEL = os.path.join(ROOT, "models", "digits.onnx")
SAMPLES = np.load(os.path.join(ROOT, "models", "digits", "samples.npy"))
LABELS = np.load(os.path.join(ROOT, "models", "digits", "labels.npy"))


def compile_digits(target, out):
    subprocess.run([NEOC, "compile", MODEL, "--target", target, "-o", out, "--json"], check=True, capture_output=True)
    return out


class DigitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.host = compile_digits("host", os.path.join(cls.tmp.name, "digits.neo"))
        cls.portable = compile_digits("x86-64", os.path.join(cls.tmp.name, "digits-portable.neo"))
        cls.model = neoc_runtime.Model(cls.host)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_signature(self):
        (i,) = self.model.inputs
        (o,) = self.model.outputs
        self.assertEqual((i.name, i.dtype, i.shape), ("image", "float32", (1, 1, 8, 8)))
        self.assertEqual((o.name, o.dtype, o.shape), ("probabilities", "float32", (1, 10)))
        self.assertEqual(self.model.target, "host")
        self.assertIn("image", repr(self.model))

    def test_outputs_match_onnxruntime_and_classify_the_held_out_digits(self):
        try:
            import onnxruntime as ort
        except ImportError:
            self.skipTest("onnxruntime is not installed")
        sess = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
        correct = 0
        for x, label in zip(SAMPLES, LABELS):
            x = x[None]
            ours = self.model.run({"image": x})["probabilities"]
            (theirs,) = sess.run(None, {"image": x})
            self.assertEqual(ours.dtype, np.float32)
            self.assertEqual(ours.shape, (1, 10))
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
            correct += int(np.argmax(ours)) == int(label)
        self.assertGreaterEqual(correct, 95, f"accuracy {correct}/100")

    def test_input_forms_and_conversions_give_the_same_result(self):
        x = SAMPLES[3:4]
        want = self.model.run({"image": x})["probabilities"]
        # A list or tuple in input order, one array, another dtype, Fortran order, nested lists.
        for given in ([x], (x,), x, x.astype(np.float64), np.asfortranarray(x), {"image": x.tolist()}):
            np.testing.assert_array_equal(self.model.run(given)["probabilities"], want)
        # A non-contiguous view is copied once, then computed the same way.
        wide = np.zeros((1, 1, 8, 16), np.float32)
        wide[..., ::2] = x
        np.testing.assert_array_equal(self.model.run({"image": wide[..., ::2]})["probabilities"], want)

    def test_errors_name_the_input_and_the_fix(self):
        with self.assertRaisesRegex(ValueError, r"input 'image': expected shape \[1, 1, 8, 8\], got \[8, 8\]"):
            self.model.run({"image": SAMPLES[0, 0]})
        with self.assertRaisesRegex(KeyError, "no input 'img'"):
            self.model.run({"img": SAMPLES[:1]})
        with self.assertRaisesRegex(ValueError, "takes 1 inputs, got 2"):
            self.model.run([SAMPLES[:1], SAMPLES[:1]])
        with self.assertRaises(neoc_runtime.LoadError):
            neoc_runtime.Model(os.path.join(self.tmp.name, "missing.neo"))
        with self.assertRaisesRegex(neoc_runtime.LoadError, "only one code section"):
            neoc_runtime.Model(self.host, code_variant="x86-64-v3")

    def test_concurrent_runs_from_threads(self):
        want = [self.model.run(SAMPLES[i : i + 1])["probabilities"] for i in range(16)]

        def work(i):
            return self.model.run(SAMPLES[i : i + 1])["probabilities"]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            for _ in range(5):
                for w, g in zip(want, pool.map(work, range(16))):
                    np.testing.assert_array_equal(g, w)

    def test_portable_artifact_variants_agree(self):
        best = neoc_runtime.Model(self.portable)
        self.assertIn(best.code_variant, ("x86-64-v2", "x86-64-v3", "x86-64-v4"))
        ref = best.run(SAMPLES[:1])["probabilities"]
        ran = 0
        for v in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
            try:
                m = neoc_runtime.Model(self.portable, code_variant=v, threads=1)
            except neoc_runtime.LoadError as e:
                self.assertIn("lacks", str(e))
                continue
            self.assertEqual(m.code_variant, v)
            self.assertEqual(m.threads, 1)
            np.testing.assert_allclose(m.run(SAMPLES[:1])["probabilities"], ref, rtol=1e-5, atol=1e-7)
            ran += 1
        self.assertGreaterEqual(ran, 1)


if __name__ == "__main__":
    unittest.main()
