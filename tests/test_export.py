"""`latency-lab network export`: any network, a search's winner too, as a deployable file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from latency_lab.models.build_tflite import op_list
from latency_lab.cli.app import main
from latency_lab.models.files import tflite_path

ROOT = Path(__file__).resolve().parents[1]
SEARCH_RESULT = ROOT / "results" / "cpu" / "compare-b0-to-b1-budget"


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_tflite_dynamic_and_fixed(capsys, tmp_path, tiny):
    from ai_edge_litert.interpreter import Interpreter

    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    for res, expected in ((None, [1, -1, -1, 3]), (96, [1, 96, 96, 3])):
        out = tmp_path / f"tiny-{res}.tflite"
        extra = ["--resolution", res] if res else []
        code, stdout, _ = run(capsys, "network", "export", net, "--format", "tflite",
                              "--out", out, *extra)
        assert code == 0 and tiny.fingerprint in stdout
        detail = Interpreter(model_path=str(out)).get_input_details()[0]
        assert list(detail["shape_signature"]) == expected


def test_export_a_search_winner(capsys, tmp_path):
    from latency_lab.network.presets import load_network

    winner = json.loads((SEARCH_RESULT / "result.json").read_text())["network"]
    spec = load_network(str(SEARCH_RESULT))
    assert spec.to_dict() == winner and spec.resolution == 240
    out = tmp_path / "winner.tflite"
    code, stdout, _ = run(capsys, "network", "export", SEARCH_RESULT, "--format", "tflite",
                          "--out", out)
    assert code == 0 and spec.fingerprint in stdout and out.stat().st_size > 20e6


@pytest.mark.slow
def test_export_onnx_and_torch_run_at_the_exported_shape(capsys, tmp_path, tiny):
    import onnxruntime as ort
    import torch

    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    assert run(capsys, "network", "export", net, "--format", "onnx", "--out",
               tmp_path / "t.onnx", "--resolution", 80)[0] == 0
    session = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 80, 80]
    out = session.run(None, {"image": np.zeros((1, 3, 80, 80), np.float32)})[0]
    assert out.shape == (1, tiny.num_classes)
    assert run(capsys, "network", "export", net, "--format", "torch", "--out",
               tmp_path / "t.pt2")[0] == 0
    program = torch.export.load(str(tmp_path / "t.pt2")).module()
    for size in (64, 97):   # H and W dynamic
        assert program(torch.zeros(1, 3, size, size)).shape == (1, tiny.num_classes)


@pytest.mark.slow
def test_export_keras_and_converted_tflite(capsys, tmp_path, tiny):
    import keras

    net = tmp_path / "tiny.json"
    net.write_text(tiny.to_json())
    assert run(capsys, "network", "export", net, "--format", "keras", "--out",
               tmp_path / "t.keras")[0] == 0
    model = keras.models.load_model(tmp_path / "t.keras")
    assert model.output_shape == (1, tiny.num_classes)
    assert run(capsys, "network", "export", net, "--format", "tflite", "--builder", "keras",
               "--out", tmp_path / "k.tflite")[0] == 0
    assert op_list((tmp_path / "k.tflite").read_bytes()) == op_list(
        tflite_path(tiny, tmp_path / "cache").read_bytes())


@pytest.mark.parametrize("args, message", [
    (["--format", "caffe", "--out", "x.caffe"], "unknown export format 'caffe'"),
    (["--format", "tflite", "--builder", "tf", "--out", "x.tflite"], "unknown builder 'tf'"),
    (["--format", "keras", "--out", "x.h5"], "a Keras export is a .keras file"),
    (["--format", "torch", "--out", "x.pt"], "a torch export is a torch.export .pt2 file"),
    (["--format", "tflite", "--out", "{dir}"], "is a directory"),
    (["--format", "tflite", "--out", "{dir}/file.txt/x.tflite"], "cannot write"),
    (["--format", "tflite", "--out", "x.tflite", "--resolution", "8"], "outside 32..2048"),
])
def test_bad_export_is_one_line_and_exit_2(capsys, tmp_path, args, message):
    (tmp_path / "file.txt").write_text("")
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    code, _, err = run(capsys, "network", "export", "efficientnet-b0", *args)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_directory_without_a_search_result_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "network", "export", tmp_path, "--format", "tflite", "--out",
                       tmp_path / "x.tflite")
    assert code == 2 and "not a search result directory" in err
