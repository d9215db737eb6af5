"""Quality measures and figure rendering."""

import numpy as np
import pytest
import torch
from PIL import Image

from vqgen import evaluate, render
from vqgen.weights import WeightsError


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (4000, 3))
    b = rng.normal(0, 2, (4000, 3)) + np.array([1.0, 0, 0])
    assert evaluate.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # closed form for diagonal covariances: |mu|^2 + sum (s1 - s2)^2
    assert evaluate.frechet_distance(a, b) == pytest.approx(1 + 3 * (1 - 2) ** 2, rel=0.1)


def test_frechet_distance_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(0)
    value = evaluate.frechet_distance(rng.normal(size=(9, 32)), rng.normal(size=(9, 32)))
    assert np.isfinite(value) and value > 0


def test_psnr_and_codebook_usage():
    x = torch.zeros(2, 3, 4, 4)
    assert evaluate.psnr(x, x + 0.2) == pytest.approx(10 * np.log10(4 / 0.04), rel=1e-4)
    usage = evaluate.codebook_usage(np.array([[0, 1], [1, 1]]), 4)
    assert usage["codebook_usage"] == 0.5
    assert 1 < usage["codebook_perplexity"] < 2


def test_grid_strip_and_gif_lay_images_out_in_order(tmp_path):
    imgs = np.stack([np.full((8, 8, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    g = render.grid(imgs, cols=3, pad=2)
    assert g.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    for i in range(5):  # image i at row i // 3, column i % 3, white padding around
        r, c = divmod(i, 3)
        assert (g[2 + 10 * r : 10 + 10 * r, 2 + 10 * c : 10 + 10 * c] == 10 * (i + 1)).all()
    assert (g[:2] == 255).all() and (g[:, :2] == 255).all() and (g[12:, 22:] == 255).all()  # the empty sixth slot

    traj = [np.stack([np.full((8, 8, 3), t * 20 + i, np.uint8) for i in range(2)]) for t in range(7)]
    assert [f[0, 0, 0, 0] for f in render.pick(traj, 4)] == [0, 40, 80, 120]  # first and last included
    s = render.strip_image(traj, columns=4)
    assert s.shape == (2 * 10 + 2, 4 * 10 + 2, 3)
    for i in range(2):  # a row per sample, a column per picked step
        for j, t in enumerate([0, 2, 4, 6]):
            assert s[2 + 10 * i, 2 + 10 * j, 0] == t * 20 + i
    render.gif(tmp_path / "a.gif", traj, cols=2, hold=3)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 7
        im.seek(6)
        assert im.info["duration"] == 3 * 120  # the last frame is held
        assert abs(int(np.asarray(im.convert("RGB"))[2 * 2, 2 * 2, 0]) - 120) <= 2
    render.panels(tmp_path / "p.png", [[("a", imgs), ("b", imgs)]], cols=3, title="t")
    render.panels(tmp_path / "q.png", [[("a", imgs), ("b", imgs)], [("c", imgs)]], cols=3)
    with Image.open(tmp_path / "p.png") as one_row, Image.open(tmp_path / "q.png") as two_rows:
        assert one_row.width > one_row.height and two_rows.height > 1.5 * one_row.height
    assert not list(tmp_path.glob(".*tmp*"))


def torchvision_weights(path):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(), path)
    return path


def fidelity_weights(path, monkeypatch):
    """A randomly initialised network of torch-fidelity's architecture, saved as its weights file."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf

    with monkeypatch.context() as m:  # third-party boundary: no download, keep the random init
        m.setattr(tf, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        torch.save(tf.FeatureExtractorInceptionV3("x", ["2048"]).state_dict(), path)
    return path


def test_inception_weights_are_found_on_disk_only(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert evaluate.find_inception() is None and evaluate.find_inception(str(tmp_path / "nope.pth")) is None
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / evaluate.TORCHVISION_WEIGHTS).write_bytes(b"x")
    assert evaluate.find_inception() == cache / evaluate.TORCHVISION_WEIGHTS
    (cache / evaluate.FIDELITY_WEIGHTS).write_bytes(b"x")
    assert evaluate.find_inception() == cache / evaluate.FIDELITY_WEIGHTS  # the standard one first
    assert evaluate.find_inception(str(cache / evaluate.TORCHVISION_WEIGHTS)) == cache / evaluate.TORCHVISION_WEIGHTS


class Planted:
    """What an attacker leaves in place of weights: a pickle that creates `marker` when it is loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def plant(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"Conv2d_1a_3x3.conv.weight": Planted(marker)}, path)
    return path


@pytest.mark.parametrize(
    "where, name",
    [
        ("given", evaluate.FIDELITY_WEIGHTS),
        ("given", evaluate.TORCHVISION_WEIGHTS),
        ("given", "anything.pth"),
        ("hub cache", evaluate.FIDELITY_WEIGHTS),
        ("hub cache", evaluate.TORCHVISION_WEIGHTS),
    ],
)
def test_a_planted_pickle_never_runs(tmp_path, monkeypatch, where, name):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    marker = tmp_path / "pwned"
    if where == "given":
        weights = evaluate.find_inception(str(plant(tmp_path / name, marker)))
    else:
        plant(tmp_path / "hub" / "checkpoints" / name, marker)
        weights = evaluate.find_inception()
    assert weights is not None and weights.name == name
    with pytest.raises(WeightsError, match="is not a tensor-only Inception-v3 weights file") as e:
        evaluate.Inception(weights)
    assert not marker.exists()
    assert str(weights) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x80\x02garbage", "is not a tensor-only"),
        ({"step": 3}, "holds no state dict of tensors"),
        ({"fc.weight": torch.zeros(2, 2)}, "expected layout"),
    ],
)
@pytest.mark.parametrize("name", [evaluate.FIDELITY_WEIGHTS, evaluate.TORCHVISION_WEIGHTS])
def test_broken_inception_weights_are_one_sentence(tmp_path, content, message, name):
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(WeightsError, match=message) as e:
        evaluate.Inception(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


@pytest.mark.parametrize("backend", ["torchvision", "torch-fidelity"])
def test_inception_fid_from_either_network(tmp_path, monkeypatch, backend):
    if backend == "torchvision":
        weights = torchvision_weights(tmp_path / "inception.pth")
    else:
        weights = fidelity_weights(tmp_path / evaluate.FIDELITY_WEIGHTS, monkeypatch)
    net = evaluate.Inception(weights)
    assert net.standard == (backend == "torch-fidelity")
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    feats = net([x[:2], x[2:]])
    assert feats.shape == (4, 2048) and np.isfinite(feats).all()
    assert np.allclose(net([x]), feats, atol=1e-4)  # batching does not change features
    real = {"features": np.random.default_rng(0).normal(size=(4, 3)), "inception": feats}
    fake = {"features": real["features"] + 1, "inception": net([-x])}
    assert np.isfinite(evaluate.compare(real, fake, k=2)["inception_fid"])
    assert "inception_fid" not in evaluate.compare({"features": real["features"]}, fake, k=2)


def test_frechet_distance_matches_scipy_and_is_zero_on_itself():
    from scipy import linalg

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(500, 6)), rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert evaluate.frechet_distance(a, b) == pytest.approx(reference, rel=1e-8)
    few = rng.normal(size=(5, 40))  # singular covariance
    assert evaluate.frechet_distance(few, few) == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2 samples"):
        evaluate.frechet_distance(few[:1], few)


def test_precision_and_recall_on_sets_whose_answer_is_known():
    real = np.arange(10.0)[:, None]  # each real point's nearest other point is 1 away
    fake = np.array([[0.5], [100.0], [200.0]])  # one inside the real manifold; their own balls are ~100 wide
    assert evaluate.precision_recall(real, fake, k=1) == {"precision": pytest.approx(1 / 3), "recall": 1.0}
    assert evaluate.precision_recall(real, real + 0.5, k=1) == {"precision": 1.0, "recall": 1.0}
    far = np.array([[50.0], [51.0], [52.0], [53.0]])  # balls of radius 2 at k=2, far from everything real
    assert evaluate.precision_recall(real, far, k=2) == {"precision": 0.0, "recall": 0.0}


@pytest.mark.parametrize("k", [0, 3, 5])
def test_precision_and_recall_refuse_a_k_that_makes_every_ball_hold_the_whole_set(k):
    with pytest.raises(ValueError, match=f"k is {k} for sets of 10 and 4"):
        evaluate.precision_recall(np.arange(10.0)[:, None], np.arange(4.0)[:, None], k=k)


def test_attribute_tv_is_the_mean_absolute_difference_of_frequencies():
    assert evaluate.attribute_tv([0.5, 0.2, 1.0], [0.5, 0.6, 0.0]) == pytest.approx((0 + 0.4 + 1.0) / 3)
    assert evaluate.attribute_tv([0.3, 0.7], [0.3, 0.7]) == 0.0
    assert evaluate.attribute_tv([], []) == 0.0


def test_rates_off_names_the_attributes_off_the_reachable_rate_by_more_than_a_third():
    reachable = {"Eyeglasses": 0.06, "Male": 0.5, "Bald": 0.09, "Smiling": 0.4}
    rates = {"Eyeglasses": 0.02, "Male": 0.66, "Bald": 0.115, "Smiling": 0.54, "Blurry": 0.3}
    assert evaluate.rates_off(rates, reachable) == ["Eyeglasses", "Smiling"]  # 0.04 > 0.02; 0.14 > 0.133
    assert evaluate.rates_off(rates, reachable, share=0.5) == ["Eyeglasses"]


def test_rates_surely_off_are_those_off_by_more_than_z_standard_errors_of_the_difference():
    reachable = {"Eyeglasses": 0.06, "Smiling": 0.4}
    rates = {"Eyeglasses": 0.02, "Smiling": 0.54}
    # over 400 images each: standard errors sqrt(p(1 - p) 2/400) at the pooled p = 0.04 and 0.47
    assert evaluate.rates_off(rates, reachable, z=2, counts=(400, 400)) == ["Eyeglasses", "Smiling"]  # 2.9, 4.0
    assert evaluate.rates_off(rates, reachable, z=3, counts=(400, 400)) == ["Smiling"]
    assert evaluate.rates_off(rates, reachable, z=3, counts=(100, 100)) == []  # 1.4, 2.0: noise explains both


def test_rates_off_by_chance_is_the_expected_count_for_samples_drawn_at_the_reachable_rates():
    # one image a set at rate 0.5: off when (sample, reconstruction) is (1, 0) or (0, 1), each a quarter
    assert evaluate.rates_off_by_chance([0.5], 1, 1) == pytest.approx(0.5)
    assert evaluate.rates_off_by_chance([0.5], 1, 1, z=2) == 0  # 1 is 1.41 standard errors
    assert evaluate.rates_off_by_chance([0.0, 1.0], 400, 400) == pytest.approx(0, abs=1e-9)
    reachable, rng = np.array([0.04, 0.1, 0.45]), np.random.default_rng(0)
    drawn = rng.binomial(400, reachable, (20000, 3)) / 400, rng.binomial(300, reachable, (20000, 3)) / 300
    simulated = (np.abs(drawn[0] - drawn[1]) > drawn[1] / 3).sum(1).mean()
    assert evaluate.rates_off_by_chance(reachable, 400, 300) == pytest.approx(simulated, abs=0.02)
    assert evaluate.rates_off_by_chance(reachable, 4000, 3000) < 0.1 < simulated  # more images, less noise


def test_labelled_rows_show_each_picture_at_twice_its_size_in_its_row_under_the_title(tmp_path):
    red, blue = np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    render.labelled_rows(tmp_path / "r.png", [("red", red), ("blue", blue)], title="two requests")
    with Image.open(tmp_path / "r.png") as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    grid_w, grid_h = 3 * (8 + 2) * 2 + 4, (8 + 2) * 2 + 2 * 2  # a row of three at scale 2, padded
    assert px.shape[1] > grid_w and px.shape[0] > 2 * grid_h + 36  # room for the labels and the title
    redish = (px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)
    blueish = (px[..., 2] > 200) & (px[..., 0] < 60) & (px[..., 1] < 60)
    assert abs(redish.sum() - 3 * 16 * 16) <= 3 * 16 * 2 and abs(blueish.sum() - 3 * 16 * 16) <= 3 * 16 * 2
    red_rows, blue_rows = np.nonzero(redish.any(1))[0], np.nonzero(blueish.any(1))[0]
    assert 36 <= red_rows.min() and red_rows.max() < blue_rows.min()  # under the title, in order
    assert (px[: red_rows.min(), : px.shape[1] // 2] < 128).any()  # the title's text
    assert (px[red_rows.min() : red_rows.max(), : np.nonzero(redish.any(0))[0].min()] < 128).any()  # the label
