"""``ufm.analyze`` and ``python -m ufm.analyze`` (issue 36): features trained anywhere.

Against references that do not share the code under test: exact OF / ETF / certified-optimum
features (Delta_GM by a formula derived here), a hand-computed NC1, a plain NumPy
re-implementation of the Kini et al. conventions, ``ufm.core.geometry`` for the project's, the
reduced relaxation's class matrix for the predicted cosines, and hand-written files in every
accepted format (safetensors byte by byte).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

import ufm
from ufm.analysis.groups import majority_classes
from ufm.cli.analyze_cmd import main
from ufm.core import geometry

COUNTS = [20, 20, 4, 4]  # one count vector for every test that computes the optimum (cached)
K = len(COUNTS)
Y = np.repeat(np.arange(K), COUNTS)
TAU = 0.1


def _scales(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 3.0, size=(n, 1))


def _of_etf_distance(k: int) -> float:
    """Delta_GM between the unit-Frobenius OF and ETF Grams: ||I||_F = sqrt(k), ||G_E||_F^2 =
    k + k(k-1)/(k-1)^2 = k^2/(k-1), <I, G_E> = k, so Delta^2 = 2 - 2 k / (sqrt(k) k/sqrt(k-1))."""
    return float(np.sqrt(2.0 - 2.0 * np.sqrt((k - 1) / k)))


def _etf_vectors(k: int) -> np.ndarray:
    v = np.eye(k) - 1.0 / k
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- exact geometries


def test_exact_orthogonal_frame_with_random_norms_and_dead_coordinates():
    h = np.hstack([np.eye(K)[Y], np.zeros((Y.size, 2))]) * _scales(Y.size)
    r = ufm.analyze(h, Y, tau=TAU)
    assert r.relu and r.relu_source == "detected"
    assert r.delta_gm_of <= 1e-12 and r.nc1 <= 1e-12
    assert r.delta_gm_optimum == r.delta_gm_optimum_relu and r.delta_gm_optimum <= 1e-9
    assert r.delta_gm_etf == pytest.approx(_of_etf_distance(K), abs=1e-12)
    assert r.health["negative_fraction"] == 0.0 and r.health["dead_coordinates"] == 2
    assert r.health["dead_fraction"] == pytest.approx(2 / (K + 2))
    assert r.counts == COUNTS and r.imbalance_ratio == 5.0 and r.majority == [True, True, False, False]
    assert r.summaries["measured"] == {"cos_maj_maj": 0.0, "cos_min_min": 0.0, "cos_maj_min": 0.0,
                                       "cos_min": 0.0, "cos_max": 0.0}
    assert r.optimum["relu"]["certified"] and r.optimum["relu"]["kind"] == "of"
    assert r.optimum["relu"]["loss"] == pytest.approx(ufm.of_loss(COUNTS, TAU), rel=1e-14)
    assert any("dead" in w for w in r.warnings)


def test_exact_simplex_etf():
    h = _etf_vectors(K)[Y] * _scales(Y.size, 1)
    r = ufm.analyze(h, Y, tau=TAU)
    assert not r.relu and r.relu_source == "detected"  # the ETF has negative entries
    assert r.delta_gm_etf <= 1e-9 and r.nc1 <= 1e-12
    assert r.delta_gm_of == pytest.approx(_of_etf_distance(K), abs=1e-9)
    np.testing.assert_allclose(r.cosines, np.where(np.eye(K) > 0, 1.0, -1.0 / (K - 1)), atol=1e-12)


def test_certified_norelu_optimum_is_matched_and_predicted_by_the_relaxation():
    res = ufm.solve(COUNTS, tau=TAU, nonneg=False, method="classes")
    starts = np.cumsum([0, *COUNTS[:-1]])
    vectors = res.z[starts]  # one unit vector per class (collapsed)
    h = vectors[Y] * _scales(Y.size, 2)
    r = ufm.analyze(h, Y, tau=TAU)
    assert not r.relu and r.delta_gm_optimum == r.delta_gm_optimum_norelu
    assert r.delta_gm_optimum <= 1e-6 and r.nc1 <= 1e-12
    assert r.optimum["norelu"]["certified"]
    # the predicted cosines against the reduced relaxation's class matrix A (independent):
    # <mu_c, mu_c'> = A_cc', ||mu_c||^2 = (1 + (n_c - 1) A_cc) / n_c
    a = ufm.certify(COUNTS, TAU, nonneg=False, method="reduced").class_gram
    n = np.asarray(COUNTS, float)
    sq = (1 + (n - 1) * np.diag(a)) / n
    inner = a.copy()
    np.fill_diagonal(inner, sq)
    np.testing.assert_allclose(r.predicted_cosines, inner / np.sqrt(np.outer(sq, sq)), atol=1e-4)
    # the broken symmetry: majority pairs more opposed than minority pairs, neither OF nor ETF
    p = r.summaries["predicted"]
    assert p["cos_maj_maj"] < p["cos_min_min"] and r.delta_gm_optimum_relu > 0.1


def test_nc1_of_a_hand_computed_toy():
    """Three classes on a circle at 0, 120, 240 degrees, two points each at +-delta: the means are
    cos(delta) u_c, Sigma_B = cos^2(delta)/2 I_2, Sigma_W = sin^2(delta)/2 I_2, so
    tr(Sigma_W Sigma_B^+) = 2 tan^2(delta); the project's NC1 divides by k = 3."""
    delta = 0.3
    ang = np.repeat(np.radians([0.0, 120.0, 240.0]), 2) + np.tile([delta, -delta], 3)
    z = np.c_[np.cos(ang), np.sin(ang)]
    y = np.repeat(np.arange(3), 2)
    want = 2 * np.tan(delta) ** 2
    assert ufm.analyze(z * _scales(6), y, optimum=False).nc1 == pytest.approx(want / 3, rel=1e-12)
    assert ufm.analyze(z, y, optimum=False, convention="kini").nc1 == pytest.approx(want, rel=1e-12)


# ----------------------------------------------------------------------------- conventions


def _kini_reference(h: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    """Kini et al.'s definitions written out: raw class means, G_M = M M^T, NC1 =
    tr(Sigma_W Sigma_B^+) with no 1/k."""
    m = np.stack([h[y == c].mean(axis=0) for c in range(k)])
    g = m @ m.T
    etf = np.eye(k) - np.ones((k, k)) / k
    d = lambda t: float(np.linalg.norm(g / np.linalg.norm(g) - t / np.linalg.norm(t)))  # noqa: E731
    sw = (h - m[y]).T @ (h - m[y]) / h.shape[0]
    mc = m - m.mean(axis=0)
    sb = mc.T @ mc / k
    return {"delta_gm_of": d(np.eye(k)), "delta_gm_etf": d(etf),
            "nc1": float(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-6, hermitian=True)))}


def test_both_conventions_against_independent_implementations():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(Y.size, 7)) * _scales(Y.size, 4) + 2 * np.eye(K, 7)[Y]
    kini = ufm.analyze(h, Y, convention="kini", optimum=False)
    for key, want in _kini_reference(h, Y, K).items():
        assert getattr(kini, key) == pytest.approx(want, rel=1e-10), key
    proj = ufm.analyze(h.astype(np.float32), Y, optimum=False)
    h32 = h.astype(np.float32)
    gram = geometry.class_mean_gram(h32, Y)
    np.testing.assert_allclose(proj.cosines, gram, atol=1e-12)
    assert proj.delta_gm_of == pytest.approx(geometry.delta_gm(gram, "of"), abs=1e-12)
    assert proj.delta_gm_etf == pytest.approx(geometry.delta_gm(gram, "etf"), abs=1e-12)
    assert proj.nc1 == pytest.approx(geometry.nc1(h32, Y), rel=1e-10)
    assert abs(proj.delta_gm_of - kini.delta_gm_of) > 1e-3  # the conventions differ on these


def test_labels_any_integers_and_majority_rule():
    h = np.eye(K)[Y] * _scales(Y.size)
    r = ufm.analyze(h, Y * 10 + 3, optimum=False)
    assert r.classes == [3, 13, 23, 33] and r.counts == COUNTS
    assert majority_classes([5, 5, 5]).tolist() == [True] * 3
    assert majority_classes([2, 9, 9, 2]).tolist() == [False, True, True, False]
    assert majority_classes([100, 50, 25, 12, 6]).tolist() == [True, True, False, False, False]
    assert majority_classes([3, 4, 5, 5, 5]).tolist() == [False, False, True, True, True]


def test_relu_detection_and_override():
    h = np.abs(np.random.default_rng(5).normal(size=(Y.size, 6)))
    assert ufm.analyze(h, Y, optimum=False).relu
    r = ufm.analyze(h, Y, optimum=False, relu=False)
    assert not r.relu and r.relu_source == "given"
    h[0, 0] = -1.0
    r = ufm.analyze(h, Y, optimum=False, relu=True)
    assert r.relu and any("negative" in w for w in r.warnings)
    assert not ufm.analyze(h, Y, optimum=False).relu
    assert r.to_dict()["predicted_cosines"] is None and r.delta_gm_optimum is None


def test_import_forms_and_json_round_trip():
    import ufm.analyze as fn
    from ufm import AnalysisReport, analyze

    assert fn is analyze and ufm.analyze is analyze
    r = analyze(np.eye(K)[Y], Y, optimum=False)
    assert isinstance(r, AnalysisReport)
    from ufm.core.jsonable import to_json

    back = json.loads(to_json(r.to_dict()))
    assert back["delta_gm_of"] == 0.0 and len(back["per_class"]) == K


@pytest.mark.parametrize("features, labels, needle", [
    (np.ones(6), [0, 0, 1, 1, 2, 2], "features must be an N x d array"),
    (np.ones((6, 2)), [0, 0, 1, 1, 2], "one label per feature row"),
    (np.ones((6, 2)), [0.0, 0, 1, 1, 2, 2], "labels must be integers"),
    (np.ones((4, 2)), [0, 0, 0, 0], "at least 2 classes"),
    (np.ones((5, 2)), [0, 0, 1, 1, 2], "class 2 only 1 sample"),
    (np.array([[1.0, np.nan]] * 4), [0, 0, 1, 1], "NaN or inf"),
    (np.array([["a", "b"]] * 4), [0, 0, 1, 1], "real N x d array"),
])
def test_bad_arrays_raise_one_line(features, labels, needle):
    with pytest.raises(ValueError, match=needle) as err:
        ufm.analyze(features, labels, optimum=False)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- deep.metrics


def _legacy_epoch_geometry(h, y, k, n_majority):
    """deep.metrics.epoch_metrics' geometry before it delegated (ufm.core.geometry)."""
    z = geometry.normalize_rows(h)
    gram = geometry.class_mean_gram(z, y, k)
    maj = np.arange(k) < n_majority
    off = ~np.eye(k, dtype=bool)
    return {"delta_gm_of": geometry.metric_or_none(geometry.delta_gm, gram, "of"),
            "delta_gm_etf": geometry.metric_or_none(geometry.delta_gm, gram, "etf"),
            "nc1": geometry.metric_or_none(geometry.nc1, z, y, k),
            "cos_maj_maj": float(gram[off & maj[:, None] & maj[None, :]].mean()),
            "cos_maj_min": float(gram[maj[:, None] & ~maj[None, :]].mean()),
            "cos_min": float(gram[off].min()), "class_mean_gram": np.round(gram, 6).tolist(),
            "zero_features": float(np.mean(~np.any(h != 0, axis=1))),
            "ncm_train_acc": float(np.mean(np.argmax(z @ geometry.normalize_rows(
                geometry.class_means(z, y, k)).T, axis=1) == y))}


def test_epoch_metrics_delegates_with_the_same_values():
    from deep.metrics import epoch_metrics

    rng = np.random.default_rng(7)
    h = rng.normal(size=(Y.size, 9)) + np.eye(K, 9)[Y]
    h[3] = 0.0  # a zero row
    got = epoch_metrics(h, Y, h[:5], Y[:5], k=K, n_majority=2)
    for key, want in _legacy_epoch_geometry(h, Y, K, 2).items():
        if isinstance(want, float):
            assert got[key] == pytest.approx(want, rel=1e-12, abs=1e-15), key
        else:
            assert got[key] == want, key


# ----------------------------------------------------------------------------- files and the CLI


def _safetensors(path, tensors: dict[str, tuple[str, np.ndarray]], header_extra=None, raw=None):
    """Write the format by hand: u64 LE header length, JSON header, raw little-endian data."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header.update(header_extra or {})
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the spec's optional space padding
    path.write_bytes(struct.pack("<Q", len(text)) + text + (b"".join(blobs) if raw is None else raw))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("feats")
    rng = np.random.default_rng(11)
    h = (rng.normal(size=(Y.size, 6)) + 2 * np.eye(K, 6)[Y]).astype(np.float32)
    y = Y.astype(np.int64)
    np.save(d / "f.npy", h)
    (d / "labels.txt").write_text("# labels\n" + "\n".join(map(str, y)) + "\n")
    np.save(d / "labels.npy", y)
    np.savez(d / "a.npz", features=h, labels=y)
    np.savez(d / "b.npz", h=h, y=y)
    np.savez(d / "c.npz", z=h, labels=y)
    _safetensors(d / "f.safetensors", {"features": ("F32", h), "labels": ("I64", y)},
                 {"__metadata__": {"format": "pt"}})
    np.savetxt(d / "f.txt", h, fmt="%.9g", header="features, one sample a line")  # float32 exact
    np.savetxt(d / "f.csv", h, fmt="%.9g", delimiter=",")
    return d, h, y


def _run(argv, capsys):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def _json_report(argv, capsys) -> dict:
    code, out = _run([*argv, "--json", "--no-optimum"], capsys)
    assert code == 0 and out.err == ""
    return json.loads(out.out)


def test_every_format_gives_the_same_report(files, capsys):
    d, h, y = files
    want = _json_report([d / "f.npy", "--labels", d / "labels.txt"], capsys)
    assert want["n_samples"] == Y.size and want["counts"] == COUNTS
    for argv in ([d / "f.npy", "--labels", d / "labels.npy"], [d / "a.npz"], [d / "b.npz"],
                 [d / "c.npz"], [d / "f.safetensors"]):
        assert _json_report(argv, capsys) == want, argv
    direct = ufm.analyze(h, y, optimum=False).to_dict()
    assert json.loads(json.dumps(direct)) == want
    # text: 9 significant digits of the float32 values, read as float64 (each within 3e-8)
    for argv in ([d / "f.txt", "--labels", d / "labels.txt"], [d / "f.csv", "--labels", d / "labels.npy"]):
        got = _json_report(argv, capsys)
        assert _close(got, want), argv


def _close(a, b) -> bool:
    """Nested JSON values equal up to 1e-6 (relative or absolute) in every number."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, z) for x, z in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return a == b


def test_safetensors_reader_against_hand_written_files(tmp_path):
    from ufm.cli.features_io import FeaturesFileError, read_safetensors

    a = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    b = np.array([1.5, -2.25], dtype=np.float16)
    bf = np.array([1.0, -3.5], dtype=np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16: the top 16 bits
    got = read_safetensors(_safetensors(tmp_path / "ok.safetensors", {
        "a": ("F64", a), "b": ("F16", b), "c": ("BF16", bf_bits), "n": ("U8", np.array([7], np.uint8))}))
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["b"], b)
    np.testing.assert_array_equal(got["c"], bf)
    assert got["n"].tolist() == [7]
    bad = {
        "length": (lambda p: p.write_bytes(struct.pack("<Q", 1000) + b"{}"), "header length"),
        "short": (lambda p: p.write_bytes(b"\x01\x02"), "shorter"),
        "json": (lambda p: p.write_bytes(struct.pack("<Q", 3) + b"{x}"), "not JSON"),
        "dtype": (lambda p: _safetensors(p, {"a": ("F128", a)}), "dtype"),
        "hole": (lambda p: _safetensors(p, {"a": ("F64", a)}, raw=a.tobytes() + b"\0" * 8),
                 "buffer holds"),
        "shape": (lambda p: _safetensors(p, {"a": ("F32", a)}, raw=a.tobytes()), "needs"),
    }
    for name, (write, needle) in bad.items():
        path = tmp_path / f"{name}.safetensors"
        write(path)
        with pytest.raises(FeaturesFileError, match=needle):
            read_safetensors(path)


def _bad(files_dir):
    d = files_dir
    np.save(d / "vec.npy", np.ones(8))
    np.save(d / "nan.npy", np.array([[1.0, np.nan]] * 4))
    np.save(d / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.savez(d / "nokeys.npz", x=np.ones((4, 2)))
    (d / "words.txt").write_text("0\n1\ncat\n")
    (d / "short.txt").write_text("0 0 1\n")
    (d / "one.txt").write_text(" ".join(map(str, [*Y[:-1], 9])))
    (d / "k1.txt").write_text(" ".join(["0"] * Y.size))
    (d / "t.pt").write_bytes(b"\x80\x04not a tensor")
    (d / "f.csvx").write_text("1")
    return [
        ([d / "vec.npy", "--labels", d / "labels.txt"], "argument FEATURES", "N x d array"),
        ([d / "nan.npy", "--labels", d / "short.txt"], "argument", "labels"),
        ([d / "f.npy", "--labels", d / "short.txt"], "argument --labels", "one label per feature row"),
        ([d / "f.npy", "--labels", d / "one.txt"], "argument --labels", "only 1 sample"),
        ([d / "f.npy", "--labels", d / "k1.txt"], "argument --labels", "at least 2 classes"),
        ([d / "f.npy", "--labels", d / "words.txt"], "argument --labels", "line 3: 'cat' is not an integer"),
        ([d / "obj.npy", "--labels", d / "labels.txt"], "argument FEATURES", "object array"),
        ([d / "nokeys.npz", "--labels", d / "labels.txt"], "argument FEATURES", "holds no features array"),
        ([d / "f.npy"], "argument --labels", "holds no labels"),
        ([d / "f.csvx"], "argument FEATURES", "suffix"),
        ([d], "argument FEATURES", "folder"),
        ([d / "f.npy", "--labels", d / "labels.txt", "--tau", "0"], "argument --tau", "must be"),
    ]


def test_bad_inputs_one_line_exit_2(files, capsys, monkeypatch):
    d, h, _ = files
    np.save(d / "nan4.npy", np.vstack([h[:3], [[np.nan] * 6], h[4:]]))
    cases = _bad(d) + [([d / "nan4.npy", "--labels", d / "labels.txt"], "argument FEATURES",
                        "NaN or inf in 1 of 48 rows (first: row 3)")]
    for argv, where, needle in cases:
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert exc.value.code == 2, argv
        assert err.count("\n") == 1 and where in err and needle in err, (argv, err)
    (d / "ragged.txt").write_text("1 2 3\n4 5\n")
    with pytest.raises(SystemExit) as exc:
        main([str(d / "ragged.txt"), "--labels", str(d / "labels.txt")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "row 2" in err, err
    monkeypatch.setitem(sys.modules, "torch", None)  # as without torch, also where it is installed
    with pytest.raises(SystemExit) as exc:
        main([str(d / "t.pt")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "needs torch" in err
    monkeypatch.setenv("SCL_GEOMETRY_MEMORY", "4K")
    with pytest.raises(SystemExit) as exc:
        main([str(d / "a.npz")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "too big" in err


def test_batches_verdict(files, capsys, tmp_path):
    from theory_checks.io import write_batches_json

    d, _, y = files
    starts = np.cumsum([0, *COUNTS[:-1]])
    binding = starts.tolist()  # one sample per class in every batch
    rest = [i for i in range(Y.size) if i not in binding]
    good = [binding + rest[j::4] for j in range(4)]
    write_batches_json(tmp_path / "good.json", y, good)
    write_batches_json(tmp_path / "pure.json", y, [np.flatnonzero(y == c).tolist() for c in range(K)])
    assert _json_report([d / "a.npz", "--batches", tmp_path / "good.json"], capsys)["batches"]["holds"]
    bad = _json_report([d / "a.npz", "--batches", tmp_path / "pure.json"], capsys)["batches"]
    assert not bad["holds"] and bad["conditions"]["b"]["details"]
    write_batches_json(tmp_path / "other.json", y[::-1], good)
    with pytest.raises(SystemExit) as exc:
        main([str(d / "a.npz"), "--batches", str(tmp_path / "other.json")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "not the features' labels" in err and err.count("\n") == 1


def test_text_report_and_out_folder(files, capsys, tmp_path):
    d, _, _ = files
    out = tmp_path / "rep"
    code, text = _run([d / "a.npz", "--tau", TAU, "--out", out], capsys)
    assert code == 0 and "Delta_GM to OF" in text.out and "certified" in text.out
    report = json.loads((out / "report.json").read_text())
    assert report["optimum"]["norelu"]["certified"] and report["predicted_cosines"] is not None
    table = (out / "classes.csv").read_text().splitlines()
    assert table[0].startswith("class,count,group") and len(table) == K + 1
    assert (out / "cosines.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


def test_the_entry_point(files, tmp_path):
    d, _, _ = files
    run = lambda *a: subprocess.run([sys.executable, "-m", "ufm.analyze", *map(str, a)],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    bad = run(d / "nokeys.npz") if (d / "nokeys.npz").exists() else run(tmp_path / "missing.npz")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.count("\n") == 1
    assert "Traceback" not in bad.stderr and bad.stderr.startswith("python -m ufm.analyze: error:")
    good = run(d / "b.npz", "--no-optimum", "--convention", "kini")
    assert good.returncode == 0 and "convention: kini" in good.stdout


def test_pytorch_recipe(tmp_path):
    """docs/analyze.md's recipe for PyTorch users, verbatim in spirit (only where torch is)."""
    torch = pytest.importorskip("torch")
    feats = torch.randn(Y.size, 8) + 2 * torch.eye(K, 8)[torch.as_tensor(Y)]
    labels = torch.as_tensor(Y)
    torch.save({"features": feats, "labels": labels}, tmp_path / "feats.pt")
    np.save(tmp_path / "feats.npy", feats.numpy())
    np.save(tmp_path / "labels.npy", labels.numpy())
    a = subprocess.run([sys.executable, "-m", "ufm.analyze", str(tmp_path / "feats.pt"), "--json",
                        "--no-optimum"], capture_output=True, text=True, timeout=120)
    b = subprocess.run([sys.executable, "-m", "ufm.analyze", str(tmp_path / "feats.npy"), "--labels",
                        str(tmp_path / "labels.npy"), "--json", "--no-optimum"],
                       capture_output=True, text=True, timeout=120)
    assert a.returncode == 0 and json.loads(a.stdout) == json.loads(b.stdout)
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    c = subprocess.run([sys.executable, "-m", "ufm.analyze", str(tmp_path / "list.pt")],
                       capture_output=True, text=True, timeout=120)
    assert c.returncode == 2 and c.stderr.count("\n") == 1 and "not a tensor" in c.stderr
