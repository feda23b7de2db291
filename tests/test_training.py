"""The training harness on a seconds-long synthetic run: learning happens, resume works, export runs."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from training.train import main as train_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny_dehaze_test.yaml"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_run_learns_resumes_and_exports(tmp_path, bgrn_tif):
    runs, models = tmp_path / "runs", tmp_path / "models"
    train_main(["--config", str(TINY), "--runs", str(runs), "--out", str(models), "--max-steps", "20",
                "--no-export"])
    assert (runs / "tiny-dehaze-test" / "ckpt.pt").exists()
    bundle = train_main(["--config", str(TINY), "--runs", str(runs), "--out", str(models), "--max-steps", "60"])
    log = _rows(runs / "tiny-dehaze-test" / "log.csv")
    steps = [int(r["step"]) for r in log]
    assert steps[0] == 1 and steps[-1] == 60 and steps == sorted(steps)  # resumed, not restarted
    first = np.mean([float(r["loss"]) for r in log[:3]])
    last = np.mean([float(r["loss"]) for r in log[-3:]])
    assert last < 0.8 * first, (first, last)
    val = _rows(runs / "tiny-dehaze-test" / "val.csv")[-1]
    assert float(val["psnr_coarse"]) > float(val["psnr_input"]) + 2.0, val
    assert (runs / "tiny-dehaze-test" / "config.yaml").exists()

    # the exported bundle runs through the plugin's runtime path
    from osgeo import gdal

    from rscore.bundle import load_bundle
    from rscore.runtime import RestoreRequest, restore

    m = load_bundle(bundle).manifest
    assert m.task == "dehaze" and m.pipeline == "rddm" and set(m.stages) == {"coarse", "denoiser"}
    assert m.training["trained"] and m.training["steps"] == 60
    out = tmp_path / "o.tif"
    restore(RestoreRequest(str(bgrn_tif), str(bundle), str(out), seed=0, tile_size_px=64, overlap_px=16))
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 4 and ds.GetRasterBand(1).DataType == gdal.GDT_UInt16


def test_config_rejects_unknown_keys(tmp_path):
    from training.config import TrainConfig

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: dehaze\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match="unknown config keys \\['learning_rate'\\]"):
        TrainConfig.load(bad)


TINY_CLOUDS = ROOT / "training" / "configs" / "tiny_clouds_test.yaml"


def test_cloud_task_trains_coarse_to_fine():
    """Phase 1: E + CNP on 4x-reduced images; phase 2: WA only (CNP frozen); phase 3: CNP and WA jointly."""
    import torch

    from training.config import TrainConfig
    from training.tasks import TASKS

    task = TASKS["remove_clouds"](TrainConfig.load(TINY_CLOUDS))
    rng = np.random.default_rng(0)
    expected = {0.1: ({"ref_l1", "mask_bce", "ddpm"}, {"coarse", "cnp"}),
                0.5: ({"ref_l1", "mask_bce", "wa_l1"}, {"coarse", "wa"}),
                0.9: ({"ref_l1", "mask_bce", "ddpm", "wa_l1"}, {"coarse", "cnp", "wa"})}
    for progress, (loss_names, trained) in expected.items():
        task.set_progress(progress)
        batch = task.batch(rng)
        if progress < 0.3:  # the CNP's batch is the 4x reduction of a patch 4x the coarse size
            assert batch["clean_lo"].shape[-1] * 4 == 4 * 8 and batch["clean"].shape[-1] == 32
        task.networks.zero_grad(set_to_none=True)
        losses = task.losses(task.networks, batch)
        assert set(losses) == loss_names
        sum(losses.values()).backward()
        with_grad = {k for k, net in task.networks.items() if any(p.grad is not None for p in net.parameters())}
        assert with_grad == trained, (progress, with_grad)
    assert torch.isfinite(sum(losses.values()))


def test_tiny_cloud_run_exports_a_de_bundle(tmp_path, bgrn_tif):
    from osgeo import gdal

    from rscore.bundle import load_bundle
    from rscore.runtime import RestoreRequest, restore

    bundle = train_main(["--config", str(TINY_CLOUDS), "--runs", str(tmp_path / "runs"), "--out",
                         str(tmp_path / "models"), "--max-steps", "12"])
    m = load_bundle(bundle).manifest
    assert m.task == "remove_clouds" and m.pipeline == "de" and set(m.stages) == {"coarse", "denoiser"}
    assert m.stages["denoiser"].outputs == ("eps", "weight") and m.fusion.weight_floor == 0.3
    assert m.sampler.family == "ddim" and m.sampler.default_steps == 3
    assert set(m.training["final_validation"]) == {"psnr_input", "psnr_ref", "psnr_pure", "psnr_de",
                                                   "psnr_clear_ref", "psnr_clear_ref_worst"}
    assert m.stages["coarse"].outputs == ("x", "cloud") and m.extra_outputs == ("cloud",)
    assert m.auto_mask is not None and 0 < m.auto_mask.threshold < 1
    out = tmp_path / "o.tif"
    restore(RestoreRequest(str(bgrn_tif), str(bundle), str(out), seed=0, tile_size_px=64, overlap_px=16))
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 4 and ds.GetRasterBand(1).DataType == gdal.GDT_UInt16
    # the automatic mask: a first pass writes the model's cloud map, only pixels above its threshold change
    auto = tmp_path / "auto.tif"
    rep = restore(RestoreRequest(str(bgrn_tif), str(bundle), str(auto), seed=0, tile_size_px=64, overlap_px=16,
                                 auto_mask=True, mask_threshold=0.5))
    assert rep.masked_fraction is not None and "automatic mask" in rep.summary
    src = gdal.Open(str(bgrn_tif)).ReadAsArray()
    got = gdal.Open(str(auto)).ReadAsArray()
    changed = np.any(got != src, axis=0).mean()
    assert changed <= rep.masked_fraction + 1e-9


def test_ema_warms_up_per_parameter():
    """A network whose training starts late must not inherit its initial weights in the exported EMA."""
    import torch
    from torch import nn

    from training.harness import EMA

    nets = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)})
    ema = EMA(nets, 0.999)
    for step in range(5):  # only "a" trains
        nets["a"].weight.grad = torch.ones_like(nets["a"].weight)
        with torch.no_grad():
            nets["a"].weight.add_(1.0)
            nets["b"].weight.add_(1.0)  # moved without a gradient (e.g. loaded): copied, not averaged
        ema.update(nets, step)
    assert torch.equal(ema.shadow["b"].weight, nets["b"].weight)
    nets["b"].weight.grad = torch.ones_like(nets["b"].weight)
    before = nets["b"].weight.detach().clone()
    with torch.no_grad():
        nets["b"].weight.add_(10.0)
    ema.update(nets, 5)  # first step of "b": warm-up weight 1/10 on the old value
    assert torch.allclose(ema.shadow["b"].weight, 0.1 * before + 0.9 * nets["b"].weight)


def test_csv_log_widens_its_header_for_late_losses(tmp_path):
    from training.harness import _CsvLog

    log = _CsvLog(tmp_path / "log.csv")
    log.write({"step": 1, "ddpm": 0.5})
    log.write({"step": 2, "ddpm": 0.4, "wa_l1": 0.3})
    rows = _rows(tmp_path / "log.csv")
    assert rows == [{"step": "1", "ddpm": "0.5", "wa_l1": ""}, {"step": "2", "ddpm": "0.4", "wa_l1": "0.3"}]


def test_haze_context_is_off_at_init_and_sees_a_veil():
    """The optional dark-channel context: a fresh network with it computes exactly what one without it
    computes (zero-initialised projection), and its features separate a veiled patch from the clean one
    (local minimum up, local contrast down) while commuting with a per-band affine normalisation."""
    import torch

    from rscore.models.dsrdmpd import AffineDehazeNet, HazeContext, UNetConfig

    torch.manual_seed(0)
    plain = AffineDehazeNet(UNetConfig(3, width=8))
    torch.manual_seed(0)
    ctx = AffineDehazeNet(UNetConfig(3, width=8, context_px=16))
    assert set(ctx.state_dict()) - set(plain.state_dict()) == {"context_proj.weight", "context_proj.bias"}
    ctx.load_state_dict({**plain.state_dict(), **{k: v for k, v in ctx.state_dict().items()
                                                  if k.startswith("context_proj")}})
    y = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        assert torch.equal(ctx(y), plain(y))
    feats = HazeContext(16)
    assert feats.k == 5 and tuple(feats(y).shape) == (2, 6, 8, 10)
    veiled = 0.5 * y + 0.4  # transmission 0.5, airlight 0.8
    lo, gap = feats(y).chunk(2, dim=1)
    lo_v, gap_v = feats(veiled).chunk(2, dim=1)
    assert torch.all(lo_v > lo) and torch.all(gap_v < gap)
    scale, shift = torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1), torch.tensor([0.1, -0.2, 0.3]).view(1, 3, 1, 1)
    lo_n, gap_n = feats(y * scale + shift).chunk(2, dim=1)
    assert torch.allclose(lo_n, lo * scale + shift, atol=1e-6) and torch.allclose(gap_n, gap * scale, atol=1e-6)


def test_tiny_sr_run_trains_both_phases_and_exports_an_ldcsr_bundle(tmp_path, bgrn_tif):
    """The super-resolution task: autoencoder phase, then latent diffusion (DiffIR-style unrolled chain), an
    exported three-stage bundle on the latent grid that the engine runs at a non-integer scale."""
    from osgeo import gdal

    from rscore.bundle import load_bundle
    from rscore.runtime import RestoreRequest, restore

    runs = tmp_path / "runs"
    bundle = train_main(["--config", str(ROOT / "training" / "configs" / "tiny_sr_test.yaml"), "--runs", str(runs),
                         "--out", str(tmp_path / "models")])
    log = _rows(runs / "tiny-sr-test" / "log.csv")
    assert "ae_l1" in log[0] and log[0]["ae_l1"] and log[-1]["chain_mse"] and log[-1]["chain_l1"]  # both phases ran
    m = load_bundle(bundle).manifest
    assert m.pipeline == "ldcsr" and set(m.stages) == {"cond", "denoiser", "decoder"}
    assert m.latent.factor == 8 and m.tensor("denoiser", "x_t").grid == "latent" and m.training["z_std"] > 0
    assert set(m.training["final_validation"]) == {"psnr_bicubic", "psnr_autoencoder", "psnr_regression",
                                                   "psnr_diffusion"}
    out = tmp_path / "sr.tif"
    rep = restore(RestoreRequest(str(bgrn_tif), str(bundle), str(out), scale_factor=2.5, tile_size_px=96))
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize) == (375, 425) and rep.steps == 4
    # a warm start from the bundle: the decoder (exported through a wrapper as "dec.*", beside the latent
    # denoiser's own "dec" blocks) is found, not the denoiser's "enc" blocks; the HR encoder and the latent scale,
    # which no stage holds, come back from the bundle's training_only.npz, so a continuation keeps its latent space
    import torch

    from training.config import TrainConfig
    from training.tasks import TASKS
    from training.warm_start import TRAINING_ONLY_FILE, bundle_weights, warm_start

    trained = torch.load(runs / "tiny-sr-test" / "ckpt.pt", weights_only=False)["ema"]
    task = TASKS["super_resolve"](TrainConfig.load(ROOT / "training" / "configs" / "tiny_sr_test.yaml"))
    lines = warm_start(task.networks, str(bundle), task.warm_inputs)
    extra = f"({TRAINING_ONLY_FILE}: a training-only network)"
    assert sorted(lines) == sorted([
        f"enc: loaded from {bundle} {extra}", f"dec: loaded from {bundle} (inside another stage)",
        f"cond: loaded from {bundle}", f"denoiser: loaded from {bundle}", f"z_scale: loaded from {bundle} {extra}"])
    saved = bundle_weights(str(bundle))["decoder"]
    assert all(torch.equal(v, saved[f"dec.{k}"]) for k, v in task.networks["dec"].state_dict().items())
    for name in ("enc", "z_scale"):
        for k, v in task.networks[name].state_dict().items():
            assert torch.equal(v, trained[f"{name}.{k}"]), f"{name}.{k}"
    assert float(task.networks["z_scale"].std) == m.training["z_std"] > 0
    # without the file, both start from scratch as before
    (bundle / TRAINING_ONLY_FILE).unlink()
    task = TASKS["super_resolve"](TrainConfig.load(ROOT / "training" / "configs" / "tiny_sr_test.yaml"))
    lines = warm_start(task.networks, str(bundle), task.warm_inputs)
    assert f"enc: not in {bundle}, starts from scratch" in lines
    assert f"z_scale: set from {bundle}'s manifest (z_std {m.training['z_std']:.6g})" in lines
    assert float(task.networks["z_scale"].std) == pytest.approx(m.training["z_std"])

    # recovering the encoder of such a bundle: everything else frozen (model.freeze), the autoencoder phase only
    import yaml

    raw = yaml.safe_load((ROOT / "training" / "configs" / "tiny_sr_test.yaml").read_text())
    raw["model"].update(ae_fraction=1.0, init_from=str(bundle), freeze=["dec", "cond", "denoiser"])
    raw["loss"]["latent_anchor"] = 0.02
    raw.update(max_steps=4, val_every=4, log_every=1)
    cfg_path = tmp_path / "tiny_sr_encoder.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    again = train_main(["--config", str(cfg_path), "--runs", str(tmp_path / "runs2"), "--out", str(tmp_path / "m2")])
    before = bundle_weights(str(bundle))
    after = bundle_weights(str(again))
    for stage in ("cond", "denoiser", "decoder"):
        for k, v in before[stage].items():
            torch.testing.assert_close(after[stage][k], v, rtol=0, atol=1e-6, msg=f"{stage} {k}")
    assert all(float(r["latent_anchor"]) > 0 for r in _rows(tmp_path / "runs2" / "tiny-sr-test" / "log.csv"))
    recovered = np.load(again / TRAINING_ONLY_FILE)
    assert {k.split("/")[0] for k in recovered.files} == {"enc", "z_scale"}
    assert float(recovered["z_scale/std"][0]) == pytest.approx(m.training["z_std"])
    with pytest.raises(ValueError, match="model.freeze names"):
        raw["model"]["freeze"] = ["decoder"]
        cfg_path.write_text(yaml.safe_dump(raw))
        train_main(["--config", str(cfg_path), "--runs", str(tmp_path / "runs3"), "--out", str(tmp_path / "m3")])


def test_shipped_sr_configs_train_on_the_realistic_sensor_noise_the_evaluation_uses():
    """The SR evaluation's sensor-like down-sampler and the shipped SR configs use the same noise levels."""
    from rscore.degradations.resample import SENSOR_NOISE
    from training.config import TrainConfig

    for name in ("sr_bgrn", "sr_rgb"):
        cfg = TrainConfig.load(ROOT / "training" / "configs" / f"{name}.yaml")
        assert {k: float(v) for k, v in cfg.data["lr_noise"].items()} == SENSOR_NOISE, name
        assert 0.0 < float(cfg.data["identity_fraction"]) < 0.2


def test_tiny_refsr_run_trains_and_exports_a_reference_bundle(tmp_path, bgrn_tif):
    """The reference-based SR task: its losses, validation rows and an exported RDDM bundle whose texture stage
    reads the reference and its validity, run by the engine at a non-integer scale with a reference."""
    from osgeo import gdal

    from rscore.bundle import load_bundle
    from rscore.runtime import RestoreRequest, restore

    runs = tmp_path / "runs"
    bundle = train_main(["--config", str(ROOT / "training" / "configs" / "tiny_refsr_test.yaml"), "--runs",
                         str(runs), "--out", str(tmp_path / "models")])
    log = _rows(runs / "tiny-refsr-test" / "log.csv")
    assert {"coarse_l1", "res_l1", "eps_l1"} <= set(log[-1])
    m = load_bundle(bundle).manifest
    assert m.task == "reference_super_resolve" and m.pipeline == "rddm"
    assert m.stages["coarse"].inputs == ("y", "aux", "aux_valid", "scale") and m.tensor("denoiser", "c").channels == 9
    assert {"psnr_bicubic", "psnr_no_reference", "psnr_synthetic", "psnr_unrelated"} <= set(
        m.training["final_validation"])
    out = tmp_path / "refsr.tif"
    restore(RestoreRequest(str(bgrn_tif), str(bundle), str(out), scale_factor=2.5, tile_size_px=96,
                           aux_path=str(bgrn_tif)))
    ds = gdal.Open(str(out))
    assert (ds.RasterYSize, ds.RasterXSize) == (375, 425)


def test_refsr_config_trains_on_the_reference_quality_the_evaluation_uses():
    from training.config import TrainConfig
    from training.eval_refsr import REAL_PAIR_SOURCES, REFERENCE_NOISE_MAX

    cfg = TrainConfig.load(ROOT / "training" / "configs" / "refsr_bgrn.yaml")
    assert float(cfg.data["reference_noise_max"]) == REFERENCE_NOISE_MAX
    assert not set(REAL_PAIR_SOURCES) & set(cfg.data["sources"])  # the real pairs stay held out


def test_tiny_codec_run_trains_three_phases_and_exports_a_latent_prior_bundle(tmp_path):
    """The codec-enhancement task: Stage I, Stage II frozen, then jointly (every loss of each phase in the log),
    an exported latent_prior bundle with Stage I's encoder beside it, which the engine runs on a JPEG 2000 file."""
    import onnxruntime as ort
    from osgeo import gdal

    from rscore.bundle import load_bundle
    from rscore.raster.lossy import compress_raster
    from rscore.runtime import RestoreRequest, restore
    from tests.fixtures import rasters
    from training.tasks.codec import PRIOR_ENCODER_FILE

    runs = tmp_path / "runs"
    bundle = train_main(["--config", str(ROOT / "training" / "configs" / "tiny_codec_test.yaml"), "--runs",
                         str(runs), "--out", str(tmp_path / "models")])
    log = _rows(runs / "tiny-codec-test" / "log.csv")
    assert log[0]["l1"] and not log[0].get("chain_mse")  # Stage I first
    assert any(r.get("chain_mse") and not r.get("prior_l1") for r in log)  # Stage II, Stage I frozen
    assert log[-1]["chain_mse"] and log[-1]["prior_l1"]  # jointly
    m = load_bundle(bundle).manifest
    assert m.task == "enhance_decoded" and m.pipeline == "latent_prior" and m.training["z_std"] > 0
    assert m.training["codecs"] == ["jpeg2000"] and m.sampler.posterior_noise is False
    assert m.tensor("denoiser", "x0").grid == "latent" and m.latent.factor == 8
    assert set(m.training["final_validation"]) == {"psnr_decoded", "psnr_no_prior", "psnr_regression",
                                                   "psnr_diffusion", "psnr_true_prior"}
    enc = ort.InferenceSession(str(bundle / PRIOR_ENCODER_FILE), providers=["CPUExecutionProvider"])
    assert [i.name for i in enc.get_inputs()] == ["hq", "y"]
    clean = rasters.write(tmp_path / "clean.tif", np.round(rasters.scene(4, 70, 90, seed=1) * 1e4), "UInt16",
                          epsg=32633)
    jp2 = compress_raster(clean, tmp_path / "in.jp2", "jpeg2000", compression_ratio=30).path
    out = tmp_path / "enhanced.tif"
    rep = restore(RestoreRequest(str(jp2), str(bundle), str(out)))
    assert (gdal.Open(str(out)).RasterYSize, gdal.Open(str(out)).RasterXSize) == (70, 90) and rep.steps == 4


def test_codec_batches_encode_jpeg2000_one_file_per_band_or_all_bands_in_one(monkeypatch):
    """``data.joint_file_fraction``: that share of the 4-band JPEG 2000 batches is one file of every band (as
    rsrestore:compress_raster writes it), the rest one file per band (as Sentinel-2); 0 leaves the draws as
    they were."""
    import dataclasses

    import training.tasks.codec as codec
    from training.config import TrainConfig
    from training.tasks import TASKS

    seen = []

    def spy(patches, params, per_band=None):  # noqa: ANN001, ANN202
        seen.append(per_band)
        return real(patches, params, per_band)

    real = codec.mosaic_roundtrip
    monkeypatch.setattr(codec, "mosaic_roundtrip", spy)
    base = TrainConfig.load(ROOT / "training" / "configs" / "tiny_codec_test.yaml")
    for fraction, want in ((0.5, {None, False}), (0.0, {None})):
        cfg = dataclasses.replace(base, data={**base.data, "joint_file_fraction": fraction})
        task = TASKS["enhance_decoded"](cfg)
        seen.clear()
        rng = np.random.default_rng(4)
        batches = [task.batch(rng) for _ in range(10)]
        assert set(seen) == want
        assert all(b["dec"].shape == b["hq"].shape for b in batches)
    # one file of 4 bands and four files of one band are different encodings of the same patches
    patches = task.val_hq[:2]
    params = codec.CodecParams("jp2", compression_ratio=40.0, bits=16)
    assert not np.array_equal(real(patches, params, False)[0], real(patches, params, None)[0])


def test_select_best_exports_the_best_validation_pass(tmp_path, monkeypatch):
    """With select_best the bundle holds the EMA weights of the validation pass the task scored highest
    (here rigged so that the first pass wins), and the training info names that step."""
    import dataclasses

    import torch

    from rscore.bundle import load_bundle
    from training.config import TrainConfig
    from training.harness import Trainer
    from training.tasks import TASKS
    from training.tasks.dehaze import DehazeTask

    cfg = dataclasses.replace(TrainConfig.load(TINY), val_every=5, max_steps=15, select_best=True)
    task = TASKS[cfg.task](cfg)
    scores = iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(DehazeTask, "selection_score", lambda self, val: next(scores))
    trainer = Trainer(cfg, task, tmp_path / "run")
    snapshots = {}
    orig = Trainer._keep_if_best

    def spy(self, val):  # noqa: ANN001
        snapshots[self.state.step] = {k: v.clone() for k, v in self.ema.shadow.state_dict().items()}
        orig(self, val)

    monkeypatch.setattr(Trainer, "_keep_if_best", spy)
    trainer.train()
    assert sorted(snapshots) == [5, 10, 15]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["step"] == 5 and best["score"] == 3.0
    assert all(torch.equal(best["ema"][k], v) for k, v in snapshots[5].items())
    assert not all(torch.equal(snapshots[15][k], v) for k, v in snapshots[5].items())
    m = load_bundle(trainer.export(tmp_path / "models")).manifest
    assert m.training["selected_step"] == 5 and m.training["steps"] == 15


def test_select_best_scores_the_starting_weights_of_a_warm_start(tmp_path, monkeypatch):
    """A warm-started run with select_best scores its starting weights at step 0: when no later pass beats
    them, the bundle it exports holds the weights it started from."""
    import dataclasses

    from training.config import TrainConfig
    from training.harness import Trainer
    from training.tasks import TASKS
    from training.tasks.dehaze import DehazeTask
    from training.warm_start import bundle_weights

    base = train_main(["--config", str(TINY), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "models"),
                       "--max-steps", "5"])
    cfg = TrainConfig.load(TINY)
    cfg = dataclasses.replace(cfg, name="tiny-warm", val_every=5, max_steps=10, select_best=True,
                              model={**cfg.model, "init_from": str(base)})
    scores = iter([3.0, 1.0, 2.0])
    monkeypatch.setattr(DehazeTask, "selection_score", lambda self, val: next(scores))
    trainer = Trainer(cfg, TASKS[cfg.task](cfg), tmp_path / "runs" / "tiny-warm")
    trainer.train()
    with open(tmp_path / "runs" / "tiny-warm" / "val.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [0, 5, 10]
    bundle = trainer.export(tmp_path / "warm")
    before, after = bundle_weights(str(base)), bundle_weights(str(bundle))
    assert all(np.allclose(before[s][k].numpy(), v.numpy(), atol=1e-6) for s in after for k, v in after[s].items())


def test_select_best_needs_a_task_score(tmp_path):
    import dataclasses

    from training.config import TrainConfig
    from training.harness import Trainer
    from training.tasks import TASKS

    cfg = dataclasses.replace(TrainConfig.load(ROOT / "training" / "configs" / "tiny_sr_test.yaml"), select_best=True)
    with pytest.raises(ValueError, match="no selection_score"):
        Trainer(cfg, TASKS[cfg.task](cfg), tmp_path / "run")


def test_dehaze_selection_score_weighs_the_worst_clean_patch():
    from types import SimpleNamespace

    from training.tasks.dehaze import DehazeTask

    one_pass = SimpleNamespace(sampler=SimpleNamespace(default_steps=0), CLEAN_FLOOR_DB=40.0, CLEAN_PENALTY=0.1)
    val = {"psnr_coarse": 24.0, "psnr_full": 30.0, "psnr_clear_coarse_worst": 30.0, "psnr_clear_full_worst": 50.0}
    assert DehazeTask.selection_score(one_pass, val) == pytest.approx(23.0)  # 24 - 0.1 * (40 - 30)
    assert DehazeTask.selection_score(one_pass, {**val, "psnr_clear_coarse_worst": 45.0}) == pytest.approx(24.0)
    diffusion = SimpleNamespace(**{**vars(one_pass), "sampler": SimpleNamespace(default_steps=5)})
    assert DehazeTask.selection_score(diffusion, val) == pytest.approx(30.0)


def test_clouds_selection_score_weighs_the_worst_clean_patch():
    from types import SimpleNamespace

    from training.tasks.clouds import CloudRemovalTask

    one_pass = SimpleNamespace(sampler=SimpleNamespace(default_steps=0), CLEAN_FLOOR_DB=40.0, CLEAN_PENALTY=0.1)
    val = {"psnr_ref": 26.0, "psnr_de": 28.0, "psnr_clear_ref_worst": 35.0}
    assert CloudRemovalTask.selection_score(one_pass, val) == pytest.approx(25.5)  # 26 - 0.1 * (40 - 35)
    assert CloudRemovalTask.selection_score(one_pass, {**val, "psnr_clear_ref_worst": 41.0}) == pytest.approx(26.0)
    sampled = SimpleNamespace(**{**vars(one_pass), "sampler": SimpleNamespace(default_steps=5)})
    assert CloudRemovalTask.selection_score(sampled, val) == pytest.approx(27.5)


def test_warm_start_finds_networks_exported_inside_another_stage(tmp_path):
    """The cloud bundle exports its CNP and WA networks together as one stage ("denoiser", weights named cnp.* and
    wa.*): a warm start from it loads both, not only the reference."""
    import torch

    from training.config import TrainConfig
    from training.tasks import TASKS
    from training.warm_start import bundle_weights, warm_start

    base = train_main(["--config", str(TINY_CLOUDS), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "m"),
                       "--max-steps", "3"])
    cfg = TrainConfig.load(TINY_CLOUDS)
    task = TASKS[cfg.task](cfg)
    lines = warm_start(task.networks, str(base), task.warm_inputs)
    assert sorted(lines) == sorted([f"coarse: loaded from {base}", f"cnp: loaded from {base} (inside another stage)",
                                    f"wa: loaded from {base} (inside another stage)"])
    saved = bundle_weights(str(base))["denoiser"]
    for name in ("cnp", "wa"):
        for k, v in task.networks[name].state_dict().items():
            if f"{name}.{k}" in saved:
                assert torch.equal(v, saved[f"{name}.{k}"]), f"{name}.{k}"


def test_warm_start_unwraps_a_stage_exported_through_a_wrapper(tmp_path):
    """refsr exports its denoiser through ResidualOnly (the residual head alone), which names every weight
    "denoiser.<name>": a warm start from that bundle still loads the denoiser, weight for weight."""
    import torch
    import yaml

    from training.config import TrainConfig
    from training.tasks import TASKS
    from training.warm_start import bundle_weights, warm_start

    raw = yaml.safe_load((ROOT / "training" / "configs" / "tiny_refsr_test.yaml").read_text())
    raw["model"]["eps_at_inference"] = "derived"
    cfg_path = tmp_path / "tiny_refsr_derived.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    base = train_main(["--config", str(cfg_path), "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "m"),
                       "--max-steps", "2"])
    saved = bundle_weights(str(base))["denoiser"]
    assert saved and all(k.startswith("denoiser.") for k in saved)  # the wrapper's prefix
    cfg = TrainConfig.load(cfg_path)
    task = TASKS[cfg.task](cfg)
    lines = warm_start(task.networks, str(base), task.warm_inputs)
    assert sorted(lines) == sorted([f"coarse: loaded from {base}", f"denoiser: loaded from {base}"])
    for k, v in task.networks["denoiser"].state_dict().items():
        assert torch.equal(v, saved[f"denoiser.{k}"]), k


def test_refsr_selection_score_penalises_copying_an_unrelated_reference():
    from types import SimpleNamespace

    from training.tasks.refsr import ReferenceSrTask

    one_pass = SimpleNamespace(sampler=SimpleNamespace(default_steps=0), UNRELATED_MARGIN_DB=0.1,
                               UNRELATED_PENALTY=1.0)
    # the unrelated patches are compared with no reference on those patches, not on the synthetic ones (34.0)
    val = {"psnr_synthetic_coarse": 35.0, "psnr_unrelated_coarse": 33.6, "psnr_no_reference_coarse": 30.0,
           "psnr_no_reference_unrelated_coarse": 34.0, "psnr_synthetic": 30.0, "psnr_unrelated": 30.0,
           "psnr_no_reference": 30.0, "psnr_no_reference_unrelated": 30.0}
    assert ReferenceSrTask.selection_score(one_pass, val) == pytest.approx(34.7)  # 35 - 1.0 * (0.4 - 0.1)
    assert ReferenceSrTask.selection_score(one_pass, {**val, "psnr_unrelated_coarse": 33.95}) == pytest.approx(35.0)
    sampled = SimpleNamespace(**{**vars(one_pass), "sampler": SimpleNamespace(default_steps=5)})
    assert ReferenceSrTask.selection_score(sampled, val) == pytest.approx(30.0)
